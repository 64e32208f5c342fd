//! What a request requires beyond the policy itself: a [`Requirement`], given by the service for
//! one route, or found in the policy's `[[routes]]` for a request's method and path.

use std::fmt;

/// What one request requires in addition to the policy's own rules: more scopes, and rules the
/// policy marks `route_only`. A requirement only adds; it never removes what the policy requires.
///
/// ```
/// use jwt_policy::Requirement;
///
/// let admin = Requirement::new().scope("mcp:admin").rule("admin-role");
/// assert_eq!(admin.scopes(), ["mcp:admin"]);
/// assert_eq!(admin.rules(), ["admin-role"]);
/// assert!(Requirement::new().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Requirement {
    scopes: Vec<String>,
    rules: Vec<String>,
}

impl Requirement {
    /// Nothing beyond the policy.
    pub const fn new() -> Self {
        Self {
            scopes: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// Also requires `scope` to be granted.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        let scope = scope.into();
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
        }
        self
    }

    /// Also requires each of `scopes`.
    pub fn scopes_from<S: Into<String>>(self, scopes: impl IntoIterator<Item = S>) -> Self {
        scopes.into_iter().fold(self, Self::scope)
    }

    /// Also applies the policy's `route_only` rule called `name`. Naming a rule the policy does
    /// not have denies every token (reason `internal`): a requirement that cannot be checked
    /// fails closed.
    pub fn rule(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        if !self.rules.contains(&name) {
            self.rules.push(name);
        }
        self
    }

    /// The scopes this requirement adds, in the order given.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The names of the `route_only` rules this requirement applies.
    pub fn rules(&self) -> &[String] {
        &self.rules
    }

    /// Whether it adds nothing.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty() && self.rules.is_empty()
    }

    /// Everything `self` and `other` require.
    pub fn and(&self, other: &Requirement) -> Requirement {
        let both = self.clone().scopes_from(other.scopes.iter().cloned());
        other.rules.iter().cloned().fold(both, Self::rule)
    }
}

/// One `[[routes]]` entry: a path prefix matched on whole segments, optionally some methods, and
/// what such requests require.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The prefix, without a trailing `/` (except for `/` itself).
    pub(crate) path: String,
    /// Upper-case methods; empty means every method.
    pub(crate) methods: Vec<String>,
    pub(crate) requirement: Requirement,
}

impl Route {
    /// Whether `path` (already checked by [`request_path`]) is this prefix or below it.
    fn covers(&self, path: &str) -> bool {
        self.path == "/"
            || path
                .strip_prefix(&self.path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Why a request path cannot be matched against routes (the request is refused, HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError(String);

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PathError {}

/// The path of a request URI (`/a/b?x=1` → `/a/b`), refused when the service behind the proxy
/// could read it as another path: a `.` or `..` segment, an empty segment (`//`), a `\`, a
/// percent-encoded `/`, `\`, NUL or unreserved character (`%2F`, `%2e`, `%61` for `a`: RFC 3986
/// §2.3 says those are never encoded, and a server decodes them), a `%` not followed by two hex
/// digits, or a path not starting with `/`. Routes are matched on the path as sent,
/// case-sensitively; anything a server might normalise differently is refused rather than
/// guessed, so `/admin/%2e%2e/` or `/%61dmin` cannot step around a route on `/admin`.
pub fn request_path(uri: &str) -> Result<&str, PathError> {
    let path = uri.split(['?', '#']).next().unwrap_or("");
    let refuse = |problem: &str| {
        Err(PathError(format!(
            "the request path `{}` {problem}",
            escape(path)
        )))
    };
    if !path.starts_with('/') {
        return refuse("does not start with `/`");
    }
    if path.contains('\\') {
        return refuse("holds a `\\`");
    }
    let bytes = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            None => return refuse("holds a `%` that is not followed by two hex digits"),
            Some(b) if b.is_ascii_alphanumeric() || b"-._~/\\\0".contains(&b) => {
                return refuse(&format!(
                    "holds `{}`, an encoded `{}`",
                    path.get(i..i + 3).unwrap_or("%"),
                    char::from(b).escape_default()
                ));
            }
            Some(_) => {}
        }
    }
    // The first segment is the empty one before the leading `/`; the last may be empty (`/a/`).
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => return refuse("has a `.` or `..` segment"),
            "" if i != last => return refuse("has an empty segment (`//`)"),
            _ => {}
        }
    }
    Ok(path)
}

/// A path for a message: control characters escaped, cut to a readable length.
fn escape(path: &str) -> String {
    crate::text::escape(path)
}

/// The most specific route for a request: the longest matching path prefix, then one that lists
/// the method over one that lists none. `None` when no route applies.
/// How a route is named in messages: `/admin`, or `DELETE,POST /admin`.
#[cfg(feature = "cli")]
pub(crate) fn route_name(route: &Route) -> String {
    if route.methods.is_empty() {
        format!("`{}`", route.path)
    } else {
        format!("`{} {}`", route.methods.join(","), route.path)
    }
}

pub(crate) fn matching<'r>(routes: &'r [Route], method: &str, path: &str) -> Option<&'r Route> {
    routes
        .iter()
        .filter(|r| r.covers(path))
        .filter(|r| r.methods.is_empty() || r.methods.iter().any(|m| m == method))
        .max_by_key(|r| (r.path.len(), !r.methods.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, methods: &[&str], scope: &str) -> Route {
        Route {
            path: path.into(),
            methods: methods.iter().map(|m| (*m).to_owned()).collect(),
            requirement: Requirement::new().scope(scope),
        }
    }

    #[test]
    fn paths_that_could_be_read_otherwise_are_refused() {
        for ok in [
            "/",
            "/a",
            "/a/b",
            "/a/b/",
            "/a?x=/../",
            "/a#../b",
            "/a%20b",
            "/a.b/.c",
            "/%C3%A9",
        ] {
            assert!(request_path(ok).is_ok(), "{ok}");
        }
        assert_eq!(request_path("/a/b?x=1"), Ok("/a/b"));
        for bad in [
            "/admin/../x",
            "/admin/./x",
            "/admin/..",
            "//admin",
            "/admin//x",
            "/admin/%2e%2e/",
            "/admin%2Fx",
            "/admin%2fx",
            "/admin%5cx",
            "/a\\b",
            "admin",
            "",
            "/a%00",
            "/%61dmin",
            "/admin%7e",
            "/a%zz",
            "/a%2",
        ] {
            assert!(request_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_most_specific_route_applies() {
        let routes = [
            route("/", &[], "any"),
            route("/admin", &[], "admin"),
            route("/admin", &["POST"], "admin-write"),
            route("/admin/users", &[], "users"),
        ];
        let scope = |method: &str, path: &str| {
            matching(&routes, method, path).map(|r| r.requirement.scopes()[0].clone())
        };
        assert_eq!(scope("GET", "/admin").as_deref(), Some("admin"));
        assert_eq!(scope("POST", "/admin/x").as_deref(), Some("admin-write"));
        assert_eq!(scope("POST", "/admin/users/7").as_deref(), Some("users"));
        // Whole segments: `/administrator` is not under `/admin`.
        assert_eq!(scope("GET", "/administrator").as_deref(), Some("any"));
        // Case-sensitive.
        assert_eq!(scope("GET", "/Admin").as_deref(), Some("any"));
        assert!(matching(&routes[1..], "GET", "/other").is_none());
    }
}
