//! The one shared HTTP client, the DNS resolver that enforces the target policy on every
//! address hookd actually connects to, and [`TargetResolver`], how endpoint names are
//! resolved (the system's resolver, or one DNS server the operator pinned).
//!
//! DNS rebinding cannot get around the policy: the client asks `PolicyResolver` once per
//! new connection and connects only to the addresses it returned (hyper's connector dials
//! exactly those, and IP literals skip resolution, being checked by the attempt itself),
//! so the address checked is the address dialled; nothing resolves the name a second time.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hookd_core::target::{ResolveError, ResolveHost, Resolving, TargetPolicy};
use reqwest::dns::{Addrs, Name, Resolve};

use crate::{EngineConfig, EngineError};

pub(crate) fn build(config: &EngineConfig) -> Result<reqwest::Client, EngineError> {
    // reqwest is built without a bundled crypto provider; install ring once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(config.user_agent.as_str())
        .timeout(config.attempt_timeout)
        .redirect(reqwest::redirect::Policy::none())
        // Never retry a POST on our own: a retry is a new, logged attempt.
        .retry(reqwest::retry::never())
        // A proxy from the environment would bypass the address checks below.
        .no_proxy()
        .http1_only()
        // Idle connections are pooled per host, not per webhook: many webhooks often share
        // one host (fan-out to one receiver, a platform hosting many endpoints), and a
        // pool smaller than what can be in flight to it closes connections only to open
        // them again (fan-out to 100 webhooks on one host spent most of its time in TCP
        // set-up and tear-down with 64). Idle ones still close after the pool's timeout.
        .pool_max_idle_per_host(config.max_in_flight)
        .dns_resolver(Arc::new(PolicyResolver {
            policy: config.target_policy,
            resolver: Arc::clone(&config.resolver),
        }))
        .build()
        .map_err(|e| EngineError::HttpClient(e.to_string()))
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
struct PolicyResolver {
    policy: TargetPolicy,
    resolver: Arc<dyn ResolveHost>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let resolver = Arc::clone(&self.resolver);
        Box::pin(async move {
            let host = name.as_str();
            let resolved = resolver.resolve(host).await?;
            let mut allowed = Vec::with_capacity(resolved.len());
            let mut refused = None;
            for ip in resolved {
                match policy.check_ip(ip) {
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
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn resolve(policy: TargetPolicy, host: &str) -> Result<Vec<SocketAddr>, String> {
        let name: Name = host.parse().map_err(|_| "bad name".to_owned())?;
        PolicyResolver {
            policy,
            resolver: Arc::new(TargetResolver::system()),
        }
        .resolve(name)
        .await
        .map(Iterator::collect)
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
        let resolve = |host: &'static str| {
            let name: Name = host.parse().unwrap_or_else(|_| panic!("{host}"));
            client_resolver.resolve(name)
        };
        let mixed: Vec<SocketAddr> = resolve("mixed.test")
            .await
            .map(Iterator::collect)
            .unwrap_or_default();
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
