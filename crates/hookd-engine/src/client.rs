//! The one shared HTTP client, and the DNS resolver that enforces the target policy on
//! every address hookd actually connects to.

use std::net::SocketAddr;
use std::sync::Arc;

use hookd_core::target::TargetPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

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
        .pool_max_idle_per_host(config.max_in_flight_per_webhook)
        .dns_resolver(Arc::new(PolicyResolver {
            policy: config.target_policy,
        }))
        .build()
        .map_err(|e| EngineError::HttpClient(e.to_string()))
}

/// Resolves names with the system resolver, then drops addresses the policy refuses, so
/// a name that resolves (or rebinds) to a private address cannot be reached.
struct PolicyResolver {
    policy: TargetPolicy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| policy.check_ip(a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                let first = resolved
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_default();
                return Err(format!(
                    "{host} resolves only to refused addresses ({first}); start hookd with --allow-private-targets to permit them"
                )
                .into());
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
        PolicyResolver { policy }
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
            refused
                .as_ref()
                .is_err_and(|e| e.contains("--allow-private-targets")),
            "{refused:?}"
        );
        let open = TargetPolicy {
            allow_private_targets: true,
            allow_http: true,
        };
        let allowed = resolve(open, "localhost").await.unwrap_or_default();
        assert!(allowed.iter().any(|a| a.ip().is_loopback()), "{allowed:?}");
    }
}
