//! The one shared HTTP client, the DNS resolver that enforces the target policy on every
//! address hookd actually connects to, and [`TargetResolver`], how endpoint names are
//! resolved (the system's resolver, or one DNS server the operator pinned).
//!
//! DNS rebinding cannot get around the policy: the client asks `PolicyResolver` once per
//! new connection and connects only to the addresses it returned (hyper's connector dials
//! exactly those, and IP literals skip resolution, being checked by the attempt itself),
//! so the address checked is the address dialled; nothing resolves the name a second time.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hookd_core::target::{ResolveError, ResolveHost, Resolving, TargetPolicy};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_platform_verifier::ConfigVerifierExt;

use crate::{EngineConfig, EngineError};

/// The engine's HTTP/1.1 client: hyper's pooled client straight, HTTPS through rustls.
/// (reqwest, used before, cloned each request's headers for its retry and redirect layers
/// and parsed every URL again; with neither retries nor redirects wanted, those layers
/// were a fifth of the delivery threads' time in fan-out.)
pub(crate) type HttpClient = Client<HttpsConnector<HttpConnector<PolicyResolver>>, Full<Bytes>>;

pub(crate) fn build(config: &EngineConfig) -> Result<HttpClient, EngineError> {
    // rustls is built without a default crypto provider; install ring once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The operating system's trust store decides which endpoint certificates are valid.
    let tls = rustls::ClientConfig::with_platform_verifier()
        .map_err(|e| EngineError::HttpClient(format!("TLS set-up: {e}")))?;
    let mut http = HttpConnector::new_with_resolver(PolicyResolver {
        policy: config.target_policy,
        resolver: Arc::clone(&config.resolver),
    });
    // `https` URLs go on to the TLS layer below.
    http.enforce_http(false);
    // A request is written in one go; waiting to coalesce it only adds latency.
    http.set_nodelay(true);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    // No retries and no redirects: hyper does neither, and a retry is a new, logged attempt.
    // No proxy either: one from the environment would bypass the address checks below.
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        // Idle connections are pooled per host, not per webhook: many webhooks often share
        // one host (fan-out to one receiver, a platform hosting many endpoints), and a
        // pool smaller than what can be in flight to it closes connections only to open
        // them again (fan-out to 100 webhooks on one host spent most of its time in TCP
        // set-up and tear-down with 64). Idle ones still close after the pool's timeout.
        .pool_max_idle_per_host(config.max_in_flight)
        .build(https))
}

/// How long a pinned DNS server gets to answer one query (it is asked twice at most).
const PINNED_DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// Resolves endpoint names: with the system's resolver (`getaddrinfo`: the hosts file,
/// then the servers of `/etc/resolv.conf`), or, when the operator pins one
/// (`--dns-server`), by asking that DNS server alone, over UDP and TCP, with no hosts
/// file and no search domains (its answers are cached for their TTL).
#[derive(Clone, Debug)]
pub struct TargetResolver {
    pinned: Option<(SocketAddr, TokioResolver)>,
}

impl TargetResolver {
    /// The system's resolver.
    pub fn system() -> TargetResolver {
        TargetResolver { pinned: None }
    }

    /// The system's resolver, or the DNS server at `server` alone.
    pub fn new(server: Option<SocketAddr>) -> Result<TargetResolver, EngineError> {
        let Some(server) = server else {
            return Ok(TargetResolver::system());
        };
        let mut name_server = NameServerConfig::udp_and_tcp(server.ip());
        for connection in &mut name_server.connections {
            connection.port = server.port();
        }
        let mut options = ResolverOpts::default();
        options.use_hosts_file = ResolveHosts::Never;
        options.timeout = PINNED_DNS_TIMEOUT;
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![name_server]),
            TokioRuntimeProvider::default(),
        )
        .with_options(options)
        .build()
        .map_err(|e| EngineError::Resolver(format!("DNS server {server}: {e}")))?;
        Ok(TargetResolver {
            pinned: Some((server, resolver)),
        })
    }
}

impl ResolveHost for TargetResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> Resolving<'a> {
        Box::pin(async move {
            let failed = |reason: String| ResolveError {
                host: host.to_owned(),
                reason,
            };
            let addresses: Vec<IpAddr> = match &self.pinned {
                None => tokio::net::lookup_host((host, 0))
                    .await
                    .map_err(|e| failed(e.to_string()))?
                    .map(|a| a.ip())
                    .collect(),
                Some((server, resolver)) => resolver
                    .lookup_ip(host)
                    .await
                    .map_err(|e| failed(format!("{e} (asked {server})")))?
                    .iter()
                    .collect(),
            };
            if addresses.is_empty() {
                return Err(failed("no addresses".to_owned()));
            }
            Ok(addresses)
        })
    }
}

/// The client's resolver: resolves with the configured [`ResolveHost`], then drops the
/// addresses the policy refuses, so a name that resolves (or rebinds) to a private address
/// cannot be reached.
#[derive(Clone)]
pub(crate) struct PolicyResolver {
    policy: TargetPolicy,
    resolver: Arc<dyn ResolveHost>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl PolicyResolver {
    /// The addresses of `host` the policy allows (port 0: the connector sets the URL's).
    async fn allowed_addresses(&self, host: &str) -> Result<Vec<SocketAddr>, BoxError> {
        let resolved = self.resolver.resolve(host).await?;
        let mut allowed = Vec::with_capacity(resolved.len());
        let mut refused = None;
        for ip in resolved {
            match self.policy.check_ip(ip) {
                Ok(()) => allowed.push(SocketAddr::new(ip, 0)),
                Err(e) => {
                    tracing::warn!(host, address = %ip, "refused to connect to a non-public address of an endpoint");
                    refused.get_or_insert(e);
                }
            }
        }
        if allowed.is_empty() {
            let reason = refused.map(|e| e.to_string()).unwrap_or_default();
            return Err(
                format!("`{host}` resolves only to addresses hookd refuses: {reason}").into(),
            );
        }
        Ok(allowed)
    }
}

impl tower_service::Service<Name> for PolicyResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.clone();
        Box::pin(async move {
            let allowed = resolver.allowed_addresses(name.as_str()).await?;
            Ok(allowed.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn resolve(policy: TargetPolicy, host: &str) -> Result<Vec<SocketAddr>, String> {
        PolicyResolver {
            policy,
            resolver: Arc::new(TargetResolver::system()),
        }
        .allowed_addresses(host)
        .await
        .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_dropped_at_connect_time() {
        // `localhost` resolves from the hosts file, without any network.
        let refused = resolve(TargetPolicy::default(), "localhost").await;
        assert!(
            refused.as_ref().is_err_and(
                |e| e.contains("loopback address") && e.contains("--allow-private-targets")
            ),
            "{refused:?}"
        );
        let open = TargetPolicy {
            allow_private_targets: true,
            allow_http: true,
        };
        let allowed = resolve(open, "localhost").await.unwrap_or_default();
        assert!(allowed.iter().any(|a| a.ip().is_loopback()), "{allowed:?}");
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// The pinned resolver asks the DNS server for every lookup (a TTL-0 answer is never
    /// reused), returns A and AAAA answers, and reports names that do not exist.
    #[tokio::test]
    async fn a_pinned_server_answers_every_lookup_afresh() {
        let dns = hookd_testkit::dns::DnsServer::start().await;
        let pinned = TargetResolver::new(Some(dns.address())).unwrap_or_else(|e| panic!("{e}"));
        dns.set("dual.test", &[ip("192.0.2.1"), ip("2001:db8::1")]);
        let mut found = pinned.resolve("dual.test").await.unwrap_or_default();
        found.sort();
        assert_eq!(found, vec![ip("192.0.2.1"), ip("2001:db8::1")]);
        dns.set("dual.test", &[ip("10.0.0.1")]);
        assert_eq!(
            pinned.resolve("dual.test").await.ok(),
            Some(vec![ip("10.0.0.1")])
        );
        let missing = pinned.resolve("missing.test").await;
        assert!(
            missing
                .as_ref()
                .is_err_and(|e| e.host == "missing.test" && e.to_string().contains("missing.test")),
            "{missing:?}"
        );
        assert!(dns.queries_for("missing.test") > 0);
    }

    /// Connect time keeps the public addresses of a name that mixes them with refused ones,
    /// and refuses a name that has only refused ones, naming the address and why.
    #[tokio::test]
    async fn the_client_resolver_drops_refused_addresses() {
        let dns = hookd_testkit::dns::DnsServer::start().await;
        dns.set(
            "mixed.test",
            &[ip("93.184.216.34"), ip("127.0.0.1"), ip("fd00:ec2::254")],
        );
        dns.set("private.test", &[ip("169.254.169.254")]);
        let client_resolver = PolicyResolver {
            policy: TargetPolicy::default(),
            resolver: Arc::new(
                TargetResolver::new(Some(dns.address())).unwrap_or_else(|e| panic!("{e}")),
            ),
        };
        let resolve = |host: &'static str| client_resolver.allowed_addresses(host);
        let mixed: Vec<SocketAddr> = resolve("mixed.test").await.unwrap_or_default();
        assert_eq!(mixed, vec![SocketAddr::new(ip("93.184.216.34"), 0)]);
        let refused = resolve("private.test")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            refused,
            Err(
                "`private.test` resolves only to addresses hookd refuses: `169.254.169.254` is \
                 a link-local address, home of cloud metadata services (169.254.0.0/16); hookd \
                 does not call loopback, private, link-local or other non-public addresses \
                 (start hookd with --allow-private-targets to permit them)"
                    .to_owned()
            )
        );
    }
}
