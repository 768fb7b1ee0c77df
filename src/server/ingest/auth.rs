//! Who is calling and whether they may: a TokenReview
//! (`authentication.k8s.io/v1`) for the bearer token, then a
//! SubjectAccessReview (`authorization.k8s.io/v1`) for the verb on
//! `notificationevents.kube-notify.io` in the namespace, exactly what the API
//! server would check for `kubectl create` of a NotificationEvent.
//!
//! Tokens are bound to kube-notify: the TokenReview asks for our audience
//! (`--token-audience`, default [`DEFAULT_TOKEN_AUDIENCE`]) and the answer's
//! `status.audiences` must hold it. A token minted for the API server (what
//! `kubectl create token NAME` gives, or a pod's default token) is refused
//! with 401 and how to mint one for us: such a token, sent here, could be
//! replayed against the API server by anyone who saw one request.
//!
//! Both answers are cached briefly (bounded size, short TTL) so that the
//! synchronous route does not cost two API calls per message; concurrent
//! requests with the same token share one review. Errors from the API are
//! never cached (and never turn into a denial), nor are answers that carry
//! an evaluation error. Tokens are kept only as SHA-256 hashes and are never
//! logged.
//!
//! Floods cost little ([`super::flood`]): an implausible token is refused
//! without a review, a client address that presented too many refused tokens
//! waits (429) before its next review, at most [`MAX_CONCURRENT_REVIEWS`]
//! TokenReviews run at once, and refused tokens are remembered in a small
//! cache of their own, so they never push valid callers out of the answers;
//! so are denied SubjectAccessReviews ([`DENIED_CAPACITY`], [`DENIED_TTL`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::Client;
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::errors::ApiError;
use super::flood::{self, BadTokenBudget};

/// TokenReviews in flight at once; further callers wait for one to finish
/// (at most [`REVIEW_QUEUE_WAIT`], then 503).
pub const MAX_CONCURRENT_REVIEWS: usize = 16;

/// The longest a caller waits for a TokenReview to start.
pub const REVIEW_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Refused tokens are remembered this long at most (less with a shorter `--review-cache-ttl`) ...
const REFUSED_TTL: Duration = Duration::from_secs(5);
/// ... and this many of them.
const REFUSED_CAPACITY: usize = 1024;

/// Denied SubjectAccessReviews are remembered this long at most (less with a
/// shorter `--review-cache-ttl`; a new RoleBinding applies within it) ...
pub const DENIED_TTL: Duration = Duration::from_secs(5);
/// ... and this many of them, apart from the allowed answers.
pub const DENIED_CAPACITY: usize = 1024;

/// The audience callers' tokens must be minted for, unless `--token-audience` says otherwise.
pub const DEFAULT_TOKEN_AUDIENCE: &str = "kube-notify";

pub const GROUP: &str = "kube-notify.io";
pub const RESOURCE: &str = "notificationevents";

/// An authenticated caller, as the TokenReview described them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct User {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A TokenReview's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authn {
    User(User),
    /// A token, maybe valid, that is not meant for our audience: the answer
    /// did not list it in `status.audiences`, or refused the token for it.
    WrongAudience,
    /// Not authenticated; the review's error, if it gave one.
    Refused(Option<String>),
}

/// Why a token was refused, as remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Invalid,
    WrongAudience,
}

/// A SubjectAccessReview's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub allowed: bool,
    pub reason: Option<String>,
    pub evaluation_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AccessKey {
    user: User,
    verb: String,
    resource: &'static str,
    namespace: String,
    name: Option<String>,
}

/// Asks the API server, through the operator's own client.
pub struct Reviewer {
    client: Client,
    /// The audience tokens must be minted for.
    audience: String,
    /// Authenticated callers' answers.
    tokens: TtlCache<[u8; 32], User>,
    /// Refused tokens, apart so that a flood of them never evicts a caller.
    refused: TtlCache<[u8; 32], Refusal>,
    /// TokenReviews in flight, shared by concurrent requests with one token (nothing stays).
    reviewing: TtlCache<[u8; 32], Authn>,
    reviews: Semaphore,
    bad_tokens: BadTokenBudget,
    /// Allowed SubjectAccessReview answers.
    access: TtlCache<AccessKey, Access>,
    /// Denied ones, apart (small and short-lived) so that denials, however
    /// many, never evict an allowed caller's answer.
    denied: TtlCache<AccessKey, Access>,
    /// SubjectAccessReviews in flight, shared by concurrent requests with one key (nothing stays).
    authorizing: TtlCache<AccessKey, Access>,
}

impl Reviewer {
    /// Callers with tokens for `audience`; answers kept `ttl` (at most
    /// `capacity` of each kind); each client address may present
    /// `bad_token_budget` refused tokens before it waits.
    pub fn new(client: Client, audience: String, ttl: Duration, capacity: usize, bad_token_budget: NonZeroU32) -> Self {
        Reviewer {
            client,
            audience,
            tokens: TtlCache::new(ttl, capacity),
            refused: TtlCache::new(ttl.min(REFUSED_TTL), REFUSED_CAPACITY),
            reviewing: TtlCache::new(ttl, MAX_CONCURRENT_REVIEWS * 4),
            reviews: Semaphore::new(MAX_CONCURRENT_REVIEWS),
            bad_tokens: BadTokenBudget::new(bad_token_budget),
            access: TtlCache::new(ttl, capacity),
            denied: TtlCache::new(ttl.min(DENIED_TTL), DENIED_CAPACITY),
            authorizing: TtlCache::new(ttl, capacity.min(DENIED_CAPACITY)),
        }
    }

    /// The caller of `Authorization: Bearer <token>`, from `client` (the
    /// peer address, when known): 401 when the header is missing or the token
    /// is not valid, 429 when `client` presented too many invalid tokens, 503
    /// when the API could not be asked.
    pub async fn authenticate(&self, authorization: Option<&str>, client: Option<IpAddr>) -> Result<User, ApiError> {
        let token = bearer_token(authorization)?;
        flood::check_plausible(token)?;
        let refused = |why: Refusal| match why {
            Refusal::Invalid => ApiError::unauthenticated("the bearer token is not valid"),
            Refusal::WrongAudience => ApiError::unauthenticated(wrong_audience(&self.audience)),
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(user) = self.tokens.get(&key) {
            return Ok(user);
        }
        if let Some(why) = self.refused.get(&key) {
            return Err(refused(why));
        }
        let client = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        self.bad_tokens.take(client)?;
        let answer = self.reviewing.get_or_fetch(key, || self.token_review_queued(token), |_| false).await;
        match answer {
            Ok(Authn::User(user)) => {
                self.bad_tokens.give_back(client);
                self.tokens.insert(key, user.clone());
                Ok(user)
            }
            Ok(Authn::WrongAudience) => {
                // What a token is minted for does not change: remembered like a refusal.
                debug!(audience = %self.audience, "a token not meant for our audience was refused");
                self.refused.insert(key, Refusal::WrongAudience);
                Err(refused(Refusal::WrongAudience))
            }
            Ok(Authn::Refused(error)) => {
                // An answer with an error (the authenticator failed) is not remembered.
                if error.is_none() {
                    self.refused.insert(key, Refusal::Invalid);
                }
                Err(refused(Refusal::Invalid))
            }
            Err(e) => {
                self.bad_tokens.give_back(client);
                Err(e)
            }
        }
    }

    /// A TokenReview once one of the [`MAX_CONCURRENT_REVIEWS`] slots is free.
    async fn token_review_queued(&self, token: &str) -> Result<Authn, ApiError> {
        let busy = || ApiError::unavailable("too many callers are being authenticated at once");
        let _permit = tokio::time::timeout(REVIEW_QUEUE_WAIT, self.reviews.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        self.token_review(token).await
    }

    /// Whether `user` may `verb` NotificationEvents in `namespace` (the one
    /// named `name`, when given): 403 when not, 503 when the API could not be asked.
    pub async fn authorize(
        &self,
        user: &User,
        verb: &str,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<(), ApiError> {
        self.authorize_on(user, verb, RESOURCE, namespace, name).await
    }

    /// [`Reviewer::authorize`] for another resource of the group (e.g. `notificationintegrations`).
    pub async fn authorize_on(
        &self,
        user: &User,
        verb: &str,
        resource: &'static str,
        namespace: &str,
        name: Option<&str>,
    ) -> Result<(), ApiError> {
        let key = AccessKey {
            user: user.clone(),
            verb: verb.to_string(),
            resource,
            namespace: namespace.to_string(),
            name: name.map(str::to_string),
        };
        if self.access.get(&key).is_some() {
            return Ok(());
        }
        let access = match self.denied.get(&key) {
            Some(denied) => denied,
            None => {
                let access = self.authorizing.get_or_fetch(key.clone(), || self.access_review(&key), |_| false).await?;
                // An answer with an evaluation error is not remembered, allowed or not.
                if access.evaluation_error.is_none() {
                    let cache = if access.allowed { &self.access } else { &self.denied };
                    cache.insert(key, access.clone());
                }
                access
            }
        };
        if access.allowed {
            return Ok(());
        }
        debug!(user = %user.username, verb, namespace, "access denied");
        let mut message =
            format!("user {:?} may not {verb} {resource}.{GROUP} in namespace {namespace:?}", user.username);
        if let Some(reason) = access.reason.filter(|r| !r.is_empty()) {
            message.push_str(": ");
            message.push_str(&reason);
        }
        Err(ApiError::forbidden(message))
    }

    async fn token_review(&self, token: &str) -> Result<Authn, ApiError> {
        let review = TokenReview {
            spec: TokenReviewSpec { token: Some(token.to_string()), audiences: Some(vec![self.audience.clone()]) },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await.map_err(|e| {
            warn!(error = %e, "TokenReview failed");
            ApiError::unavailable("could not authenticate the caller: the Kubernetes API did not answer")
        })?;
        let status = answer.status.unwrap_or_default();
        Ok(authn(&self.audience, status))
    }

    async fn access_review(&self, key: &AccessKey) -> Result<Access, ApiError> {
        let user = &key.user;
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                uid: user.uid.clone(),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes: Some(ResourceAttributes {
                    group: Some(GROUP.into()),
                    resource: Some(key.resource.into()),
                    verb: Some(key.verb.clone()),
                    namespace: Some(key.namespace.clone()),
                    name: key.name.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await.map_err(|e| {
            warn!(error = %e, "SubjectAccessReview failed");
            ApiError::unavailable("could not authorize the caller: the Kubernetes API did not answer")
        })?;
        let status = answer.status.unwrap_or_default();
        Ok(Access {
            allowed: status.allowed && status.denied != Some(true),
            reason: status.reason,
            evaluation_error: status.evaluation_error.filter(|e| !e.is_empty()),
        })
    }
}

/// What a TokenReview's `status` says of a token asked about for
/// `audience`: a user only when authenticated for it (`status.audiences`
/// holds it; an answer without audiences is not taken). A refusal whose error
/// is about audiences (the ServiceAccount authenticator's "token audiences …
/// is invalid for the target audiences …", OIDC's "expected audience") is a
/// token for someone else.
pub fn authn(audience: &str, status: TokenReviewStatus) -> Authn {
    let ours = status.audiences.as_ref().is_some_and(|a| a.iter().any(|a| a == audience));
    let user = status.user.unwrap_or_default();
    match (status.authenticated, user.username) {
        (Some(true), _) if !ours => Authn::WrongAudience,
        (Some(true), Some(username)) if !username.is_empty() => Authn::User(User {
            username,
            uid: user.uid.filter(|u| !u.is_empty()),
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
        }),
        _ => match status.error.filter(|e| !e.is_empty()) {
            Some(e) if e.to_ascii_lowercase().contains("audience") => Authn::WrongAudience,
            error => Authn::Refused(error),
        },
    }
}

/// The 401 message for a token not minted for `audience`: how to mint one
/// (never the token, nor what it was minted for).
pub fn wrong_audience(audience: &str) -> String {
    format!(
        "the bearer token is not meant for kube-notify (audience {audience:?}): a token for the Kubernetes API \
         must not be sent elsewhere. Mint one for kube-notify: `kubectl create token NAME --audience {audience}`, \
         or in a pod a projected ServiceAccount token volume (serviceAccountToken) with audience: {audience}"
    )
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(authorization: Option<&str>) -> Result<&str, ApiError> {
    let header = authorization.ok_or_else(|| {
        ApiError::unauthenticated("an Authorization: Bearer <token> header with a Kubernetes token is required")
    })?;
    let (scheme, token) = header.trim().split_once(' ').unwrap_or((header, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthenticated("the Authorization header must be `Bearer <token>`"));
    }
    Ok(token)
}

/// A bounded cache of answers with a fixed time to live, whose concurrent
/// misses on one key share one fetch. Failed fetches are not cached, nor are
/// answers `cacheable` refuses.
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

struct Slot<V> {
    id: u64,
    cell: Arc<OnceCell<(V, Instant)>>,
}

struct Inner<K, V> {
    map: HashMap<K, Slot<V>>,
    /// Insertion order (which, with one TTL, is expiry order).
    order: VecDeque<(K, u64, Instant)>,
    next_id: u64,
}

impl<K: Clone + Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner { map: HashMap::new(), order: VecDeque::new(), next_id: 0 }),
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The answer for `key` if one is cached and fresh (not one being fetched).
    pub fn get(&self, key: &K) -> Option<V> {
        let inner = self.inner.lock().unwrap();
        let (v, at) = inner.map.get(key)?.cell.get()?;
        (Instant::now().duration_since(*at) < self.ttl).then(|| v.clone())
    }

    /// Cache `value` for `key` (nothing with a zero TTL).
    pub fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let (_, cell) = self.slot(&key);
        // A slot just made, or one being fetched: either way `value` is the answer.
        let _ = cell.set((value, Instant::now()));
    }

    /// The cached answer for `key`, or `fetch`'s.
    pub async fn get_or_fetch<F, Fut, E>(&self, key: K, fetch: F, cacheable: impl Fn(&V) -> bool) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if self.ttl.is_zero() {
            return fetch().await;
        }
        let (id, cell) = self.slot(&key);
        let result = cell.get_or_try_init(|| async { fetch().await.map(|v| (v, Instant::now())) }).await;
        match result {
            Ok((v, _)) => {
                let v = v.clone();
                if !cacheable(&v) {
                    self.forget(&key, id);
                }
                Ok(v)
            }
            Err(e) => {
                self.forget(&key, id);
                Err(e)
            }
        }
    }

    fn slot(&self, key: &K) -> (u64, Arc<OnceCell<(V, Instant)>>) {
        let mut inner = self.inner.lock().unwrap();
        let now = Instant::now();
        if let Some(slot) = inner.map.get(key) {
            let fresh = match slot.cell.get() {
                Some((_, at)) => now.duration_since(*at) < self.ttl,
                None => true, // a review in flight: share it
            };
            if fresh {
                return (slot.id, slot.cell.clone());
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let cell = Arc::new(OnceCell::new());
        inner.map.insert(key.clone(), Slot { id, cell: cell.clone() });
        inner.order.push_back((key.clone(), id, now));
        while inner.order.len() > self.capacity
            || inner.order.front().is_some_and(|(_, _, at)| now.duration_since(*at) >= self.ttl)
        {
            let Some((old, old_id, _)) = inner.order.pop_front() else { break };
            if inner.map.get(&old).is_some_and(|s| s.id == old_id) {
                inner.map.remove(&old);
            }
        }
        (id, cell)
    }

    fn forget(&self, key: &K, id: u64) {
        let mut inner = self.inner.lock().unwrap();
        if inner.map.get(key).is_some_and(|s| s.id == id) {
            inner.map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    async fn fetch_counted(calls: &AtomicU32, v: Result<u32, &'static str>) -> Result<u32, &'static str> {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
        v
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_reused_until_they_expire() {
        let cache = TtlCache::new(Duration::from_secs(10), 100);
        let calls = AtomicU32::new(0);
        for _ in 0..3 {
            assert_eq!(cache.get_or_fetch("a", || fetch_counted(&calls, Ok(1)), |_| true).await, Ok(1));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(cache.get_or_fetch("a", || fetch_counted(&calls, Ok(2)), |_| true).await, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_and_uncacheable_answers_are_not_kept() {
        let cache = TtlCache::new(Duration::from_secs(10), 100);
        let calls = AtomicU32::new(0);
        assert_eq!(cache.get_or_fetch("a", || fetch_counted(&calls, Err("api down")), |_| true).await, Err("api down"));
        assert!(cache.is_empty());
        assert_eq!(cache.get_or_fetch("a", || fetch_counted(&calls, Ok(7)), |v| *v != 7).await, Ok(7));
        assert!(cache.is_empty());
        assert_eq!(cache.get_or_fetch("a", || fetch_counted(&calls, Ok(1)), |_| true).await, Ok(1));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_share_one_fetch() {
        let cache = TtlCache::new(Duration::from_secs(10), 100);
        let calls = AtomicU32::new(0);
        let all = futures::future::join_all(
            (0..20).map(|_| cache.get_or_fetch("k", || fetch_counted(&calls, Ok(5)), |_| true)),
        )
        .await;
        assert!(all.iter().all(|r| *r == Ok(5)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_size_is_bounded() {
        let cache = TtlCache::new(Duration::from_secs(10), 3);
        let calls = AtomicU32::new(0);
        for k in 0..10u32 {
            cache.get_or_fetch(k, || fetch_counted(&calls, Ok(k)), |_| true).await.unwrap();
            assert!(cache.len() <= 3);
        }
        // The oldest went first; the newest are still cached.
        cache.get_or_fetch(9, || fetch_counted(&calls, Ok(0)), |_| true).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 10);
        cache.get_or_fetch(0, || fetch_counted(&calls, Ok(0)), |_| true).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 11);
        assert_eq!(cache.inner.lock().unwrap().order.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn inserted_answers_are_got_until_they_expire() {
        let cache = TtlCache::new(Duration::from_secs(10), 2);
        assert_eq!(cache.get(&"a"), None);
        cache.insert("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(cache.get(&"a"), None);
        let off = TtlCache::new(Duration::ZERO, 2);
        off.insert("a", 1);
        assert_eq!(off.get(&"a"), None);
    }

    #[tokio::test]
    async fn a_zero_ttl_disables_caching() {
        let cache = TtlCache::new(Duration::ZERO, 3);
        let calls = AtomicU32::new(0);
        cache.get_or_fetch(1, || fetch_counted(&calls, Ok(1)), |_| true).await.unwrap();
        cache.get_or_fetch(1, || fetch_counted(&calls, Ok(1)), |_| true).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    fn status(authenticated: bool, audiences: Option<&[&str]>, error: Option<&str>) -> TokenReviewStatus {
        use k8s_openapi::api::authentication::v1::UserInfo;
        TokenReviewStatus {
            authenticated: Some(authenticated),
            audiences: audiences.map(|a| a.iter().map(|a| a.to_string()).collect()),
            error: error.map(str::to_string),
            user: authenticated.then(|| UserInfo { username: Some("ci".into()), ..Default::default() }),
        }
    }

    #[test]
    fn a_token_is_taken_only_for_our_audience() {
        let user = |a: Authn| matches!(a, Authn::User(u) if u.username == "ci");
        assert!(user(authn("kube-notify", status(true, Some(&["kube-notify"]), None))));
        assert!(user(authn("kube-notify", status(true, Some(&["x", "kube-notify"]), None))));
        assert!(user(authn("notify.example", status(true, Some(&["notify.example"]), None))));
        // Authenticated, but for another audience or none said: not ours.
        for audiences in [None, Some(&[][..]), Some(&["https://kubernetes.default.svc.cluster.local"][..])] {
            assert_eq!(authn("kube-notify", status(true, audiences, None)), Authn::WrongAudience, "{audiences:?}");
        }
        // Ours, but without a username: refused.
        let mut nobody = status(true, Some(&["kube-notify"]), None);
        nobody.user = None;
        assert_eq!(authn("kube-notify", nobody), Authn::Refused(None));
        // Refused for its audience (the ServiceAccount authenticator, OIDC): a token for someone else.
        let sa = r#"token audiences ["https://kubernetes.default.svc.cluster.local"] is invalid for the target audiences ["kube-notify"]"#;
        assert_eq!(authn("kube-notify", status(false, None, Some(sa))), Authn::WrongAudience);
        assert_eq!(
            authn("kube-notify", status(false, None, Some("oidc: expected audience \"kube-notify\""))),
            Authn::WrongAudience
        );
        assert_eq!(authn("kube-notify", status(false, None, None)), Authn::Refused(None));
        assert_eq!(
            authn("kube-notify", status(false, None, Some("invalid bearer token"))),
            Authn::Refused(Some("invalid bearer token".into()))
        );
        let message = wrong_audience("kube-notify");
        assert!(message.contains("kubectl create token NAME --audience kube-notify"), "{message}");
        assert!(message.contains("projected ServiceAccount token"), "{message}");
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(Some("bearer  abc ")).unwrap(), "abc");
        for bad in [None, Some(""), Some("Bearer"), Some("Bearer   "), Some("Basic dXNlcjpwdw=="), Some("abc")] {
            let e = bearer_token(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED, "{bad:?}");
            assert!(!e.message.contains("dXNlcjpwdw"), "never echo credentials");
        }
    }
}
