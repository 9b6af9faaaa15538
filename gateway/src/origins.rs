//! Which browser pages may open a WebSocket and call the REST API from another origin
//! (`gateway.allowed_origins`, `gateway.public_url`). A browser sends `Origin` with every
//! WebSocket handshake; a page of another site must not open a socket with the user's
//! credentials (cross-site WebSocket hijacking). Allowed:
//! - a request without `Origin` (not a browser: apps, load generators, other servers);
//! - the gateway's own origin: `Origin`'s host and port are the request's `Host` (a page the
//!   gateway, or the proxy in front of it, served);
//! - the origin of `gateway.public_url`, and every origin listed in `gateway.allowed_origins`;
//! - any origin when that list holds `"*"` (development only).
//!
//! CORS follows the same list: the listed origins (and `public_url`'s) get CORS answers, and
//! every origin does with `"*"`; same-origin requests need none.

use axum::http::HeaderValue;
use shared::config::GatewayConfig;
use tower_http::cors::AllowOrigin;

/// The entry of `allowed_origins` that allows every origin.
const ANY: &str = "*";

/// Whether a WebSocket handshake with `origin` (its `Origin` header, if any) to `host` (its
/// `Host` header) is allowed.
pub fn allows(config: &GatewayConfig, origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else { return true };
    config.allowed_origins.iter().any(|a| a == ANY || a.eq_ignore_ascii_case(origin))
        || public_origin(config).is_some_and(|p| p.eq_ignore_ascii_case(origin))
        || host.is_some_and(|host| same_origin(origin, host))
}

/// The origins given CORS answers.
pub fn cors(config: &GatewayConfig) -> AllowOrigin {
    if config.allowed_origins.iter().any(|a| a == ANY) {
        return AllowOrigin::any();
    }
    let listed = config.allowed_origins.iter().map(String::as_str).chain(public_origin(config));
    AllowOrigin::list(listed.filter_map(|o| HeaderValue::from_str(o).ok()).collect::<Vec<_>>())
}

/// What is accepted, for the gateway's start log.
pub fn describe(config: &GatewayConfig) -> String {
    if config.allowed_origins.iter().any(|a| a == ANY) {
        return "any origin (allowed_origins = [\"*\"])".into();
    }
    let mut accepted = vec!["the gateway's own origin (Origin = Host)".to_owned()];
    accepted.extend(public_origin(config).map(str::to_owned));
    accepted.extend(config.allowed_origins.iter().cloned());
    accepted.push("clients that send no Origin".into());
    accepted.join(", ")
}

/// `scheme://host[:port]` of `gateway.public_url`, without its path.
fn public_origin(config: &GatewayConfig) -> Option<&str> {
    let url = config.public_url.as_deref()?;
    let (scheme, rest) = url.split_once("://")?;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    Some(&url[..scheme.len() + 3 + authority_end])
}

/// Whether `origin` (`scheme://host[:port]`) names the host and port of `host` (a `Host`
/// header), so the page came from this gateway.
fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else { return false };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let origin_host = authority.strip_suffix(default_port).unwrap_or(authority);
    let host = host.strip_suffix(default_port).unwrap_or(host);
    !authority.contains('/') && origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(allowed: &[&str], public_url: Option<&str>) -> GatewayConfig {
        GatewayConfig {
            allowed_origins: allowed.iter().map(|s| s.to_string()).collect(),
            public_url: public_url.map(str::to_owned),
            ..GatewayConfig::default()
        }
    }

    #[test]
    fn by_default_only_the_gateways_own_origin_and_clients_without_one() {
        let config = config(&[], None);
        assert!(allows(&config, None, Some("chat.example:8080")));
        assert!(allows(&config, Some("http://chat.example:8080"), Some("chat.example:8080")));
        assert!(allows(&config, Some("https://Chat.Example"), Some("chat.example:443")));
        assert!(!allows(&config, Some("http://evil.test"), Some("chat.example:8080")));
        assert!(!allows(&config, Some("http://chat.example:8081"), Some("chat.example:8080")));
        assert!(!allows(&config, Some("null"), Some("chat.example")));
        assert!(!allows(&config, Some("http://evil.test"), None));
    }

    #[test]
    fn the_public_url_and_the_listed_origins_are_allowed_and_a_star_allows_all() {
        let config = config(&["http://localhost:5173"], Some("https://chat.example.com/app/"));
        assert_eq!(public_origin(&config), Some("https://chat.example.com"));
        assert!(allows(&config, Some("https://chat.example.com"), Some("10.0.0.5:8080")));
        assert!(allows(&config, Some("http://localhost:5173"), Some("10.0.0.5:8080")));
        assert!(!allows(&config, Some("http://evil.test"), Some("10.0.0.5:8080")));
        assert!(describe(&config).contains("https://chat.example.com, http://localhost:5173"));
        let any = super::tests::config(&["*"], None);
        assert!(allows(&any, Some("http://evil.test"), Some("chat.example")));
        assert!(describe(&any).starts_with("any origin"));
    }
}
