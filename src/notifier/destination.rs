//! The connect-time guard against server-side request forgery: the addresses
//! the HTTP client connects to, after DNS, are checked, so a name that
//! resolves to a loopback, private, link-local, CGNAT or in-cluster address
//! (or is rebound to one after a check) is never connected to unless the URL
//! is trusted: an `--allow-endpoint` prefix or a service API base the
//! operator was started with.
//!
//! Name lookups go through a [`Resolver`]: the system's by default, one the
//! tests control ([`StaticResolver`]) otherwise.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use hyper_util::client::legacy::connect::dns::Name;
use url::Url;

use super::ServiceEndpoints;
use super::classify::Failure;
use super::endpoint::{ENDPOINT_NOT_ALLOWED, EndpointPolicy, is_internal_ip, is_internal_name};

/// Looks up the addresses of a host name.
pub trait Resolve: Send + Sync + 'static {
    /// The addresses `host` (a name, never an IP literal) resolves to.
    fn lookup(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The system's resolver (`getaddrinfo`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let host = host.to_string();
        async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect()) }.boxed()
    }
}

/// Fixed answers, for tests: a name not in the map does not resolve.
#[derive(Clone, Debug, Default)]
pub struct StaticResolver(HashMap<String, Vec<IpAddr>>);

impl StaticResolver {
    /// Make `host` resolve to `addrs`.
    pub fn with(mut self, host: &str, addrs: &[IpAddr]) -> Self {
        self.0.insert(host.to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

impl Resolve for StaticResolver {
    fn lookup(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let found = self.0.get(&host.trim_end_matches('.').to_ascii_lowercase()).cloned();
        let host = host.to_string();
        async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} does not resolve")))
        }
        .boxed()
    }
}

/// A shared [`Resolve`]r: the system's unless another is given.
#[derive(Clone)]
pub struct Resolver(Arc<dyn Resolve>);

impl Resolver {
    pub fn new(resolve: impl Resolve) -> Self {
        Resolver(Arc::new(resolve))
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(SystemResolver)
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

/// A destination the guard refused: the host (never the URL's path or
/// query, which may hold a credential) and what it resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forbidden {
    host: String,
    addrs: Vec<IpAddr>,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = &self.host;
        if self.addrs.is_empty() {
            write!(f, "{host} is a loopback or in-cluster name")?;
        } else {
            let addrs: Vec<String> = self.addrs.iter().map(IpAddr::to_string).collect();
            write!(
                f,
                "{host} resolves only to loopback, private, link-local or shared addresses ({})",
                addrs.join(", ")
            )?;
        }
        f.write_str("; reaching it needs the operator flag --allow-endpoint")
    }
}

impl std::error::Error for Forbidden {}

impl Forbidden {
    /// The failure reported for this refusal, prefixed with the service's name.
    pub fn failure(&self, service: &str) -> Failure {
        Failure::new(ENDPOINT_NOT_ALLOWED, format!("{service}: {self}"))
    }
}

/// Which URLs may reach internal addresses, and how names are looked up.
#[derive(Clone, Debug)]
pub struct DestinationGuard {
    trusted: EndpointPolicy,
    resolver: Resolver,
}

impl DestinationGuard {
    /// Trust the `--allow-endpoint` prefixes and the configured Slack and
    /// Chatwork API bases (operator flags); check everything else.
    pub fn new(endpoints: &ServiceEndpoints, resolver: Resolver) -> Self {
        let trusted = endpoints.policy.clone().also_allowing([&endpoints.slack_api, &endpoints.chatwork_api]);
        DestinationGuard { trusted, resolver }
    }

    /// Whether `target` (a URL) may reach any address.
    pub fn trusts(&self, target: &str) -> bool {
        Url::parse(target).is_ok_and(|url| self.trusted.allows(&url))
    }

    /// The resolver for the HTTP client's connector of untrusted
    /// destinations: it connects only to the addresses this returns.
    pub(crate) fn guarded_resolver(&self) -> ConnectResolver {
        ConnectResolver { resolver: self.resolver.clone(), guarded: true }
    }

    /// The resolver for trusted destinations: the same lookups, unchecked.
    pub(crate) fn open_resolver(&self) -> ConnectResolver {
        ConnectResolver { resolver: self.resolver.clone(), guarded: false }
    }

    /// Check `url`'s host without connecting: an IP literal or a name and
    /// what it resolves to. `Ok` also when the name does not resolve now (the
    /// connection is checked again).
    pub async fn check(&self, url: &Url) -> Result<(), Forbidden> {
        match self.check_host(url).await {
            Err(Unchecked::Forbidden(f)) => Err(f),
            Ok(()) | Err(Unchecked::Unresolved(_)) => Ok(()),
        }
    }

    /// [`check`](Self::check), failing closed: a name must resolve to a
    /// permitted address now. For a request handed to a proxy, which
    /// resolves the name itself: nothing is checked after this.
    pub async fn check_resolving(&self, url: &Url) -> Result<(), Unchecked> {
        self.check_host(url).await
    }

    async fn check_host(&self, url: &Url) -> Result<(), Unchecked> {
        if self.trusted.allows(url) {
            return Ok(());
        }
        let Some(host) = url.host() else { return Err(Unchecked::Unresolved(String::new())) };
        let name = match host {
            url::Host::Ipv4(ip) => return check_literal(&host.to_string(), ip.into()).map_err(Unchecked::Forbidden),
            url::Host::Ipv6(ip) => return check_literal(&host.to_string(), ip.into()).map_err(Unchecked::Forbidden),
            url::Host::Domain(name) => name,
        };
        match guarded_lookup(&self.resolver, name).await {
            Err(LookupError::Forbidden(f)) => Err(Unchecked::Forbidden(f)),
            Ok(permitted) if !permitted.is_empty() => Ok(()),
            Ok(_) | Err(LookupError::Io(_)) => Err(Unchecked::Unresolved(name.to_string())),
        }
    }
}

/// Why a destination did not pass [`DestinationGuard::check_resolving`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unchecked {
    /// It is internal.
    Forbidden(Forbidden),
    /// This name (never the URL's path or query) did not resolve, so it could not be checked.
    Unresolved(String),
}

/// Refuse an IP literal host that is internal.
pub fn check_literal(host: &str, ip: IpAddr) -> Result<(), Forbidden> {
    if is_internal_ip(ip) { Err(Forbidden { host: host.to_string(), addrs: vec![ip] }) } else { Ok(()) }
}

/// The name's permitted addresses, or why there are none. The name is looked
/// up as absolute (`name.`), so the resolver's search domains (a pod's
/// `svc.cluster.local`) never turn an outside name into an in-cluster one.
async fn guarded_lookup(resolver: &Resolver, name: &str) -> Result<Vec<IpAddr>, LookupError> {
    if is_internal_name(name) {
        return Err(LookupError::Forbidden(Forbidden { host: name.to_string(), addrs: Vec::new() }));
    }
    let absolute = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
    let addrs = resolver.0.lookup(&absolute).await.map_err(LookupError::Io)?;
    let permitted: Vec<IpAddr> = addrs.iter().copied().filter(|ip| !is_internal_ip(*ip)).collect();
    if permitted.is_empty() && !addrs.is_empty() {
        return Err(LookupError::Forbidden(Forbidden { host: name.to_string(), addrs }));
    }
    Ok(permitted)
}

#[derive(Debug)]
enum LookupError {
    Forbidden(Forbidden),
    Io(std::io::Error),
}

/// A connector's resolver (a `tower` service over [`Name`]). Guarded, it
/// refuses internal names and drops internal addresses from an answer; an
/// answer with nothing left is an error, [`Forbidden`].
#[derive(Clone, Debug)]
pub struct ConnectResolver {
    resolver: Resolver,
    guarded: bool,
}

impl ConnectResolver {
    /// Every answer as it is, from `resolver`.
    pub(crate) fn open(resolver: Resolver) -> Self {
        ConnectResolver { resolver, guarded: false }
    }
}

impl tower_service::Service<Name> for ConnectResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let (resolver, guarded) = (self.resolver.clone(), self.guarded);
        async move {
            let addrs = if guarded {
                guarded_lookup(&resolver, name.as_str()).await.map_err(|e| match e {
                    LookupError::Forbidden(f) => Box::new(f) as Self::Error,
                    LookupError::Io(e) => e.into(),
                })?
            } else {
                resolver.0.lookup(name.as_str()).await?
            };
            Ok(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect::<Vec<_>>().into_iter())
        }
        .boxed()
    }
}

/// The refusal somewhere in an error's chain of causes, if any.
pub fn forbidden_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Forbidden> {
    crate::causes::find(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn guard(resolver: StaticResolver, allow: &[&str]) -> DestinationGuard {
        let endpoints = ServiceEndpoints {
            slack_api: Url::parse("https://slack.com/api").unwrap(),
            chatwork_api: Url::parse("https://api.chatwork.com/v2").unwrap(),
            policy: EndpointPolicy::new(&allow.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap(),
        };
        DestinationGuard::new(&endpoints, Resolver::new(resolver))
    }

    #[test]
    fn internal_addresses() {
        for internal in [
            "127.0.0.1",
            "127.9.9.9",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(is_internal_ip(ip(internal)), "{internal}");
        }
        for public in ["8.8.8.8", "100.63.255.255", "100.128.0.1", "172.32.0.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!is_internal_ip(ip(public)), "{public}");
        }
    }

    /// Benchmarking (198.18/15), IETF protocol assignments (192.0.0/24),
    /// reserved (240/4), site-local (fec0::/10) and local-use NAT64
    /// (64:ff9b:1::/48), each at its edges; the addresses next to them are public.
    #[test]
    fn reserved_and_special_purpose_ranges() {
        for internal in [
            "198.18.0.0",
            "198.18.0.1",
            "198.19.255.255",
            "192.0.0.0",
            "192.0.0.8",
            "192.0.0.255",
            "240.0.0.0",
            "240.0.0.1",
            "250.1.2.3",
            "255.255.255.254",
            "fec0::",
            "fec0::1",
            "feff:ffff::1",
            "64:ff9b:1::",
            "64:ff9b:1::808:808",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert!(is_internal_ip(ip(internal)), "{internal}");
        }
        for public in [
            "198.17.255.255",
            "198.20.0.0",
            "192.0.1.1",
            "191.255.255.255",
            "223.255.255.255",
            "fe40::1",
            "2a00::1",
            "64:ff9b:2::808:808",
        ] {
            assert!(!is_internal_ip(ip(public)), "{public}");
        }
    }

    /// The IPv6 forms that carry an IPv4 address are internal exactly when it is.
    #[test]
    fn embedded_ipv4_addresses() {
        for (internal, public) in [
            // IPv4-mapped, ::ffff:a.b.c.d
            ("::ffff:198.18.0.1", "::ffff:198.20.0.1"),
            ("::ffff:240.0.0.1", "::ffff:1.1.1.1"),
            ("::ffff:192.0.0.9", "::ffff:192.0.1.9"),
            // NAT64, 64:ff9b::a.b.c.d
            ("64:ff9b::7f00:1", "64:ff9b::808:808"),
            ("64:ff9b::c612:1", "64:ff9b::c614:1"),
            ("64:ff9b::a9fe:a9fe", "64:ff9b::101:101"),
            // 6to4, 2002:AABB:CCDD::/48 carries AA.BB.CC.DD
            ("2002:7f00:1::", "2002:808:808::"),
            ("2002:a00:1::1", "2002:808:808::1"),
            ("2002:a9fe:a9fe::", "2002:101:101:1::1"),
            ("2002:c0a8:101::", "2002:c614:ffff::"),
            ("2002:6440:1::", "2002:6480:1::"),
            ("2002:f000:1::", "2002:df00:1::"),
            ("2002::", "2002:102:304::"),
        ] {
            assert!(is_internal_ip(ip(internal)), "{internal}");
            assert!(!is_internal_ip(ip(public)), "{public}");
        }
    }

    #[test]
    fn internal_names() {
        for internal in [
            "localhost",
            "LOCALHOST.",
            "a.localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "api.ns.svc.cluster.local",
            "metadata.google.internal",
            "printer.local",
        ] {
            assert!(is_internal_name(internal), "{internal}");
        }
        for public in ["hooks.slack.com", "example.com", "svc.example.com", "internal.example.com"] {
            assert!(!is_internal_name(public), "{public}");
        }
    }

    #[tokio::test]
    async fn names_resolving_only_to_internal_addresses_are_refused() {
        let resolver = StaticResolver::default()
            .with("loop.example", &[ip("127.0.0.1")])
            .with("ten.example", &[ip("10.1.2.3")])
            .with("metadata.example", &[ip("169.254.169.254")])
            .with("mapped.example", &[ip("::ffff:10.0.0.1")])
            .with("cgnat.example", &[ip("100.64.1.1")])
            .with("public.example", &[ip("93.184.215.14")]);
        let guard = guard(resolver, &["https://ten.example/hooks/"]);
        for host in ["loop", "metadata", "mapped", "cgnat"] {
            let url = Url::parse(&format!("https://{host}.example/hook/secret-token?sig=s3cret")).unwrap();
            let refused = guard.check(&url).await.unwrap_err();
            let message = refused.to_string();
            assert!(message.contains(&format!("{host}.example")), "{message}");
            assert!(message.contains("--allow-endpoint"), "{message}");
            assert!(!message.contains("secret") && !message.contains("s3cret"), "{message}");
        }
        // An allowed prefix permits that destination, and only under it.
        assert!(guard.check(&Url::parse("https://ten.example/hooks/a").unwrap()).await.is_ok());
        assert!(guard.check(&Url::parse("https://ten.example/other").unwrap()).await.is_err());
        assert!(guard.check(&Url::parse("https://public.example/h").unwrap()).await.is_ok());
        // Literals and in-cluster names, without a lookup.
        assert!(guard.check(&Url::parse("https://[::ffff:10.0.0.1]/h").unwrap()).await.is_err());
        assert!(guard.check(&Url::parse("https://kubernetes.default/h").unwrap()).await.is_err());
        // A name that does not resolve now is left to the connection ...
        assert!(guard.check(&Url::parse("https://unknown.example/h").unwrap()).await.is_ok());
        // ... unless nothing checks it after (a proxy resolves it): then it is refused.
        assert_eq!(
            guard.check_resolving(&Url::parse("https://unknown.example/h/s3cret").unwrap()).await,
            Err(Unchecked::Unresolved("unknown.example".into()))
        );
        assert!(matches!(
            guard.check_resolving(&Url::parse("https://loop.example/h").unwrap()).await,
            Err(Unchecked::Forbidden(_))
        ));
        assert_eq!(guard.check_resolving(&Url::parse("https://public.example/h").unwrap()).await, Ok(()));
        assert_eq!(guard.check_resolving(&Url::parse("https://8.8.8.8/h").unwrap()).await, Ok(()));
        assert_eq!(guard.check_resolving(&Url::parse("https://ten.example/hooks/a").unwrap()).await, Ok(()));
        // The configured API bases are trusted.
        assert!(guard.trusts("https://slack.com/api/chat.postMessage"));
        assert!(!guard.trusts("https://slack.com/apix"));
    }

    /// The connector gets the permitted addresses only: a mixed answer loses
    /// its internal ones (so a rebinding answer cannot smuggle one in).
    #[tokio::test]
    async fn the_connector_resolver_drops_internal_addresses() {
        use tower_service::Service;
        let resolver = StaticResolver::default()
            .with("mixed.example", &[ip("10.0.0.1"), ip("93.184.215.14")])
            .with("private.example", &[ip("192.168.0.1")]);
        let mut connector = guard(resolver, &[]).guarded_resolver();
        let addrs: Vec<SocketAddr> = connector.call("mixed.example".parse::<Name>().unwrap()).await.unwrap().collect();
        assert_eq!(addrs, vec![SocketAddr::new(ip("93.184.215.14"), 0)]);
        let err = connector.call("private.example".parse::<Name>().unwrap()).await.unwrap_err();
        assert!(forbidden_in(&*err).is_some(), "{err}");
        let err = connector.call("api.default.svc".parse::<Name>().unwrap()).await.unwrap_err();
        assert!(forbidden_in(&*err).is_some(), "{err}");
        let err = connector.call("nowhere.example".parse::<Name>().unwrap()).await.unwrap_err();
        assert!(forbidden_in(&*err).is_none(), "a lookup failure is not a refusal");
    }
}
