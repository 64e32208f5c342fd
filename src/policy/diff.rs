//! What one policy accepts that another refused, and the reverse, decided from the two closed
//! constraint sets (never by sampling tokens).
//!
//! Sound, not complete: every way in which NEW may accept a token OLD refused is reported, as
//! [`Effect::Loosens`] when it certainly does (with an example token where one is simple to
//! write) or [`Effect::MayLoosen`] when the change is one this comparison cannot prove safe
//! (a changed pattern, rule or key source). [`Effect::Tightens`] is the reverse: NEW refuses
//! tokens OLD accepted. A policy pair with no `Loosens` and no `MayLoosen` provably accepts
//! nothing new.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::model::{
    Audience, AudienceAlternative, ClaimTest, Condition, Constraint, IdRule, IdSource, Issuer,
    IssuerKeys, Match, Pattern, Policy, Presence, Rule, ValueFormat,
};
use super::routes;
use crate::algorithm::Algorithm;

/// Which way a change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Effect {
    /// NEW accepts tokens OLD refused.
    Loosens,
    /// NEW may accept tokens OLD refused: the change cannot be proved safe.
    MayLoosen,
    /// NEW refuses tokens OLD accepted.
    Tightens,
}

/// One difference in what the policies accept.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The concern: `issuers`, `header`, `limits`, `audience`, `resource`, `time`, `claims`,
    /// `rules`, `scopes`, `client_id`, `resource_client_id`, `routes`, `forward`.
    pub(crate) concern: &'static str,
    pub(crate) effect: Effect,
    /// What changed, in one line.
    pub(crate) text: String,
    /// A token NEW accepts and OLD refuses, for a change that loosens, when one is simple to
    /// write from the policies alone.
    pub(crate) witness: Option<Witness>,
}

/// An example token (before signing) and the request it is sent with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Witness {
    /// The route the token is presented on, when routes matter: method and path.
    pub(crate) request: Option<(String, String)>,
    /// The protected header (`alg`, `typ`, `kid`).
    pub(crate) header: Map<String, Value>,
    /// The claims.
    pub(crate) claims: Map<String, Value>,
    /// The time (Unix seconds) the example is decided at.
    pub(crate) at: i64,
}

/// The instant witnesses are written for: 2026-01-01T00:00:00Z.
const AT: i64 = 1_767_225_600;

/// Everything NEW accepts that OLD refused, and the reverse, concern by concern.
pub(crate) fn diff(old: &Policy, new: &Policy) -> Vec<Change> {
    let mut d = Diff {
        old,
        new,
        changes: Vec::new(),
    };
    d.issuers();
    d.header();
    d.limits();
    d.audience();
    d.resource();
    d.time();
    d.claims();
    d.rules();
    d.scopes();
    d.client_ids();
    d.routes();
    d.forward();
    d.changes
}

struct Diff<'p> {
    old: &'p Policy,
    new: &'p Policy,
    changes: Vec<Change>,
}

impl Diff<'_> {
    fn push(&mut self, concern: &'static str, effect: Effect, text: String) {
        self.changes.push(Change {
            concern,
            effect,
            text,
            witness: None,
        });
    }

    fn loosens(&mut self, concern: &'static str, text: String, witness: Option<Witness>) {
        self.changes.push(Change {
            concern,
            effect: Effect::Loosens,
            text,
            witness,
        });
    }

    /// A token NEW accepts from `issuer` (its first allowed algorithm), at [`AT`], for no route,
    /// that OLD accepts too where it can: each witness then changes only what its change is
    /// about. (Only what the policies require is written: a constraint or rule of NEW that asks
    /// for more is not satisfied.)
    fn base(&self, issuer: &Issuer) -> Witness {
        let (old, new) = (self.old, self.new);
        let mut header = Map::new();
        if let Some(alg) = issuer.algorithms.first() {
            header.insert("alg".into(), json!(alg.as_str()));
        }
        if let Some(typ) = new.header.typ.first() {
            let typ = typ.strip_prefix("application/").unwrap_or(typ);
            header.insert("typ".into(), json!(typ));
        }
        // One of the issuer's own key ids when its keys are known here.
        let kid = match &issuer.keys {
            Some(IssuerKeys::Static(keys)) => keys.keys().iter().find_map(|k| k.kid()),
            _ => None,
        };
        header.insert("kid".into(), json!(kid.unwrap_or("key-1")));
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(issuer.iss));
        claims.insert("sub".into(), json!("user-1"));
        match &new.audience {
            Audience::Accept(rule) => {
                // An alternative OLD accepts too, if there is one.
                let shared = rule.accept.iter().find(|a| match &old.audience {
                    Audience::Any => true,
                    Audience::Accept(o) => o.accept.iter().any(|o| {
                        o.value == a.value && (o.resource.is_none() || o.resource == a.resource)
                    }),
                });
                let values: Vec<&AudienceAlternative> = match rule.mode {
                    Match::Any => shared.or(rule.accept.first()).into_iter().collect(),
                    Match::All => rule.accept.iter().collect(),
                };
                claims.insert(
                    "aud".into(),
                    json!(values.iter().map(|a| a.value.as_str()).collect::<Vec<_>>()),
                );
                if let Some(resource) = values.iter().find_map(|a| a.resource.as_deref()) {
                    claims.insert("resource".into(), json!(resource));
                }
            }
            Audience::Any => {
                claims.insert("aud".into(), json!(new.resource_url));
            }
        }
        if new.resource_claim == Presence::Required {
            claims.insert("resource".into(), json!(new.resource_url));
        }
        claims.insert("iat".into(), json!(AT - 60));
        claims.insert("nbf".into(), json!(AT - 60));
        claims.insert("exp".into(), json!(AT + 600));
        if let Some((claim, format)) = new.scopes.claims.first() {
            claims.insert(claim.clone(), scope_value(&self.both_scopes(None), *format));
        }
        if let Some(IdSource::Claim(claim)) = new.client_id.sources.first() {
            claims.insert(claim.clone(), json!("client-1"));
        }
        for path in new.required_claims.iter().chain(&old.required_claims) {
            if let [name] = path.segments()
                && !claims.contains_key(name)
            {
                claims.insert(name.clone(), json!("x"));
            }
        }
        Witness {
            request: None,
            header,
            claims,
            at: AT,
        }
    }

    /// The scopes both policies require, but `without`.
    fn both_scopes(&self, without: Option<&str>) -> Vec<String> {
        let mut scopes = self.new.scopes.required.clone();
        for scope in &self.old.scopes.required {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        scopes.retain(|s| Some(s.as_str()) != without);
        scopes
    }

    /// [`Diff::base`] for NEW's first issuer OLD also trusts (or its first issuer).
    fn base_any(&self) -> Option<Witness> {
        let issuer = self
            .new
            .issuers
            .iter()
            .find(|i| self.old.issuers.iter().any(|o| o.iss == i.iss))
            .or_else(|| self.new.issuers.first())?;
        Some(self.base(issuer))
    }

    fn issuers(&mut self) {
        let (old, new) = (self.old, self.new);
        for issuer in &new.issuers {
            let Some(before) = old.issuers.iter().find(|o| o.iss == issuer.iss) else {
                let witness = self.base(issuer);
                self.loosens(
                    "issuers",
                    format!(
                        "tokens from `{}` are accepted (OLD does not trust it)",
                        issuer.iss
                    ),
                    Some(witness),
                );
                continue;
            };
            for alg in &issuer.algorithms {
                if !before.algorithms.contains(alg) {
                    let mut witness = self.base(issuer);
                    witness.header.insert("alg".into(), json!(alg.as_str()));
                    self.loosens(
                        "issuers",
                        format!(
                            "`{}` tokens signed with {} are accepted",
                            issuer.iss,
                            alg.as_str()
                        ),
                        Some(witness),
                    );
                }
            }
            for alg in &before.algorithms {
                if !issuer.algorithms.contains(alg) {
                    self.push(
                        "issuers",
                        Effect::Tightens,
                        format!(
                            "`{}` tokens signed with {} are refused",
                            issuer.iss,
                            alg.as_str()
                        ),
                    );
                }
            }
            self.keys(before, issuer);
        }
        for before in &old.issuers {
            if !new.issuers.iter().any(|i| i.iss == before.iss) {
                self.push(
                    "issuers",
                    Effect::Tightens,
                    format!(
                        "tokens from `{}` are refused (NEW does not trust it)",
                        before.iss
                    ),
                );
            }
        }
    }

    /// The keys of an issuer both trust: static key sets are compared key by key (kid,
    /// algorithm and public key bytes); anything else that changed cannot be proved safe.
    fn keys(&mut self, before: &Issuer, issuer: &Issuer) {
        let iss = &issuer.iss;
        match (&before.keys, &issuer.keys) {
            (Some(IssuerKeys::Static(a)), Some(IssuerKeys::Static(b))) => {
                let (a, b) = (key_ids(a), key_ids(b));
                // A secret's value cannot be read back from the key: the same kid in both may be
                // another secret.
                for key in b.intersection(&a).filter(|k| k.material.is_none()) {
                    self.push(
                        "issuers",
                        Effect::MayLoosen,
                        format!(
                            "`{iss}` secret key {} may have another value (secrets are not compared)",
                            key.describe()
                        ),
                    );
                }
                for key in b.difference(&a) {
                    self.loosens(
                        "issuers",
                        format!(
                            "`{iss}` tokens signed with key {} are accepted",
                            key.describe()
                        ),
                        None,
                    );
                }
                for key in a.difference(&b) {
                    self.push(
                        "issuers",
                        Effect::Tightens,
                        format!(
                            "`{iss}` tokens signed with key {} are refused",
                            key.describe()
                        ),
                    );
                }
            }
            (Some(IssuerKeys::Remote(a)), Some(IssuerKeys::Remote(b))) => {
                let (a, b) = (format!("{a:?}"), format!("{b:?}"));
                if a != b {
                    self.push(
                        "issuers",
                        Effect::MayLoosen,
                        format!("`{iss}` keys are fetched from another source: `{b}` (was `{a}`)"),
                    );
                }
            }
            (None, None) => {}
            (a, b) => {
                self.push(
                    "issuers",
                    Effect::MayLoosen,
                    format!(
                        "`{iss}` keys come from {} (were {})",
                        keys_kind(b.as_ref()),
                        keys_kind(a.as_ref())
                    ),
                );
            }
        }
        let secrets = |i: &Issuer| -> BTreeSet<String> {
            i.hmac_secrets
                .iter()
                .map(|s| format!("{:?} {:?}", s.kid, s.source))
                .collect()
        };
        let (a, b) = (secrets(before), secrets(issuer));
        if !b.is_subset(&a) {
            self.push(
                "issuers",
                Effect::MayLoosen,
                format!(
                    "`{iss}` has HMAC secrets OLD does not name (their values are not compared)"
                ),
            );
        } else if b != a {
            self.push(
                "issuers",
                Effect::Tightens,
                format!("`{iss}` trusts fewer HMAC secrets"),
            );
        }
    }

    fn header(&mut self) {
        let (old, new) = (&self.old.header, &self.new.header);
        if new.typ.is_empty() && !old.typ.is_empty() {
            let witness = self.base_any().map(|mut w| {
                w.header.insert("typ".into(), json!("JWT"));
                w
            });
            self.loosens("header", "`typ` is no longer checked".into(), witness);
        } else if !new.typ.is_empty() {
            for typ in &new.typ {
                if !old.typ.is_empty() && !old.typ.contains(typ) {
                    let witness = self.base_any().map(|mut w| {
                        let short = typ.strip_prefix("application/").unwrap_or(typ);
                        w.header.insert("typ".into(), json!(short));
                        w
                    });
                    self.loosens("header", format!("`typ` `{typ}` is accepted"), witness);
                }
            }
            if old.typ.is_empty() || old.typ.iter().any(|t| !new.typ.contains(t)) {
                self.push(
                    "header",
                    Effect::Tightens,
                    format!("`typ` must be one of `{}`", new.typ.join("`, `")),
                );
            }
        }
        self.presence("header", "`kid`", old.kid, new.kid, |w| {
            w.header.remove("kid");
        });
        for crit in &new.crit {
            if !old.crit.contains(crit) {
                self.loosens(
                    "header",
                    format!("tokens with `crit` naming `{crit}` are accepted"),
                    None,
                );
            }
        }
        for crit in &old.crit {
            if !new.crit.contains(crit) {
                self.push(
                    "header",
                    Effect::Tightens,
                    format!("tokens with `crit` naming `{crit}` are refused"),
                );
            }
        }
    }

    /// A presence rule (`Required` > `Optional` > `Ignored`) that changed; `remove` takes the
    /// claim or parameter out of a witness.
    fn presence(
        &mut self,
        concern: &'static str,
        what: &str,
        old: Presence,
        new: Presence,
        remove: impl Fn(&mut Witness),
    ) {
        let rank = |p: Presence| match p {
            Presence::Required => 2,
            Presence::Optional => 1,
            Presence::Ignored => 0,
        };
        match rank(new).cmp(&rank(old)) {
            std::cmp::Ordering::Less => {
                let witness = (old == Presence::Required).then(|| {
                    self.base_any().map(|mut w| {
                        remove(&mut w);
                        w
                    })
                });
                self.loosens(
                    concern,
                    format!("{what} is {} (was {})", presence(new), presence(old)),
                    witness.flatten(),
                );
            }
            std::cmp::Ordering::Greater => self.push(
                concern,
                Effect::Tightens,
                format!("{what} is {} (was {})", presence(new), presence(old)),
            ),
            std::cmp::Ordering::Equal => {}
        }
    }

    fn limits(&mut self) {
        let (old, new) = (self.old.max_token_bytes, self.new.max_token_bytes);
        if new > old {
            self.loosens(
                "limits",
                format!("tokens of up to {new} bytes are accepted (was {old})"),
                None,
            );
        } else if new < old {
            self.push(
                "limits",
                Effect::Tightens,
                format!("tokens over {new} bytes are refused (was {old})"),
            );
        }
    }

    fn audience(&mut self) {
        let (old, new) = (&self.old.audience, &self.new.audience);
        let (old_rule, new_rule) = match (old, new) {
            (Audience::Any, Audience::Any) => return,
            (Audience::Accept(_), Audience::Any) => {
                let witness = self.base_any().map(|mut w| {
                    w.claims
                        .insert("aud".into(), json!("https://elsewhere.example"));
                    w
                });
                self.loosens(
                    "audience",
                    "any audience is accepted (`accept = \"any\"`)".into(),
                    witness,
                );
                return;
            }
            (Audience::Any, Audience::Accept(_)) => {
                self.push(
                    "audience",
                    Effect::Tightens,
                    "only the listed audiences are accepted (was any)".into(),
                );
                return;
            }
            (Audience::Accept(a), Audience::Accept(b)) => (a, b),
        };
        if old_rule.mode != Match::Any || new_rule.mode != Match::Any {
            let render = |r: &super::model::AudienceRule| {
                let mut text = format!("{:?}:", r.mode);
                for a in &r.accept {
                    let _ = write!(text, " {} {:?};", a.value, a.resource);
                }
                text
            };
            if render(old_rule) != render(new_rule) {
                self.push(
                    "audience",
                    Effect::MayLoosen,
                    "the audience rule changed where every alternative must match (`mode = \"all\"`)"
                        .into(),
                );
            }
            return;
        }
        // An alternative of NEW is covered when OLD accepts the same value under a guard no
        // stricter: no guard, or the same `resource`.
        for alt in &new_rule.accept {
            let covered = old_rule.accept.iter().any(|o| {
                o.value == alt.value && (o.resource.is_none() || o.resource == alt.resource)
            });
            if covered {
                continue;
            }
            let was_guarded = old_rule.accept.iter().find(|o| o.value == alt.value);
            let text = match (was_guarded, &alt.resource) {
                (Some(o), None) => format!(
                    "audience `{}` is accepted without `resource` naming `{}`",
                    alt.value,
                    o.resource.as_deref().unwrap_or_default()
                ),
                (Some(_), Some(r)) => {
                    format!("audience `{}` is accepted with `resource` `{r}`", alt.value)
                }
                (None, None) => format!("audience `{}` is accepted", alt.value),
                (None, Some(r)) => {
                    format!("audience `{}` is accepted with `resource` `{r}`", alt.value)
                }
            };
            let witness = self.base_any().map(|mut w| {
                w.claims.insert("aud".into(), json!(alt.value));
                match &alt.resource {
                    Some(r) => {
                        w.claims.insert("resource".into(), json!(r));
                    }
                    None if self.new.resource_claim != Presence::Required => {
                        w.claims.remove("resource");
                    }
                    None => {}
                }
                w
            });
            self.loosens("audience", text, witness);
        }
        for alt in &old_rule.accept {
            let kept = new_rule.accept.iter().any(|n| {
                n.value == alt.value && (n.resource.is_none() || n.resource == alt.resource)
            });
            if !kept {
                let guarded = new_rule.accept.iter().find(|n| n.value == alt.value);
                self.push(
                    "audience",
                    Effect::Tightens,
                    match (guarded.and_then(|n| n.resource.as_deref()), &alt.resource) {
                        (Some(needed), None) => format!(
                            "audience `{}` is refused unless `resource` names `{needed}`",
                            alt.value
                        ),
                        (_, Some(r)) => {
                            format!("audience `{}` with `resource` `{r}` is refused", alt.value)
                        }
                        (None, None) => format!("audience `{}` is refused", alt.value),
                    },
                );
            }
        }
    }

    fn resource(&mut self) {
        let (old, new) = (self.old, self.new);
        if old.resource_url != new.resource_url {
            self.push(
                "resource",
                Effect::MayLoosen,
                format!(
                    "the resource is `{}` (was `{}`): tokens naming it are accepted",
                    new.resource_url, old.resource_url
                ),
            );
        }
        self.presence(
            "resource",
            "the `resource` claim",
            old.resource_claim,
            new.resource_claim,
            |w| {
                w.claims.remove("resource");
            },
        );
    }

    fn time(&mut self) {
        let (old, new) = (&self.old.time, &self.new.time);
        if new.leeway > old.leeway {
            // Expired for OLD (`exp <= now - old leeway`), not yet for NEW.
            let witness = self.base_any().map(|mut w| {
                let exp = AT - i64::try_from(new.leeway).unwrap_or(i64::MAX / 2) + 1;
                w.claims.insert("exp".into(), json!(exp));
                for claim in ["iat", "nbf"] {
                    w.claims.insert(claim.into(), json!(exp - 60));
                }
                w
            });
            self.loosens(
                "time",
                format!("leeway is {} s (was {} s)", new.leeway, old.leeway),
                witness,
            );
        } else if new.leeway < old.leeway {
            self.push(
                "time",
                Effect::Tightens,
                format!("leeway is {} s (was {} s)", new.leeway, old.leeway),
            );
        }
        for (name, a, b) in [
            ("exp", old.exp, new.exp),
            ("nbf", old.nbf, new.nbf),
            ("iat", old.iat, new.iat),
        ] {
            self.presence("time", &format!("`{name}`"), a, b, |w| {
                w.claims.remove(name);
            });
        }
        match (old.max_age, new.max_age) {
            (Some(a), None) => {
                self.loosens(
                    "time",
                    format!("`iat` may be any age (was at most {a} s)"),
                    None,
                );
            }
            (Some(a), Some(b)) if b > a => {
                self.loosens("time", format!("`iat` may be {b} s old (was {a} s)"), None);
            }
            (None, Some(b)) => self.push(
                "time",
                Effect::Tightens,
                format!("`iat` may be at most {b} s old"),
            ),
            (Some(a), Some(b)) if b < a => self.push(
                "time",
                Effect::Tightens,
                format!("`iat` may be at most {b} s old (was {a} s)"),
            ),
            _ => {}
        }
    }

    fn claims(&mut self) {
        let (old, new) = (self.old, self.new);
        for path in &old.required_claims {
            if !new.required_claims.contains(path) {
                let witness = self.base_any().map(|mut w| {
                    if let [name] = path.segments() {
                        w.claims.remove(name);
                    }
                    w
                });
                self.loosens(
                    "claims",
                    format!("claim `{path}` is no longer required"),
                    witness.filter(|_| path.segments().len() == 1),
                );
            }
        }
        for path in new.required_claims.iter().chain(&old.required_claims) {
            if !old.required_claims.contains(path) {
                self.push(
                    "claims",
                    Effect::Tightens,
                    format!("claim `{path}` is required"),
                );
            }
        }
        let old_c: Vec<String> = old.constraints.iter().map(constraint).collect();
        let new_c: Vec<String> = new.constraints.iter().map(constraint).collect();
        for (c, text) in old.constraints.iter().zip(&old_c) {
            if !new_c.contains(text) {
                let effect = if new.constraints.iter().any(|n| n.path == c.path) {
                    Effect::MayLoosen
                } else {
                    Effect::Loosens
                };
                self.push(
                    "claims",
                    effect,
                    format!("the constraint on `{}` ({text}) is changed or gone", c.path),
                );
            }
        }
        for (c, text) in new.constraints.iter().zip(&new_c) {
            if !old_c.contains(text) && !old.constraints.iter().any(|o| o.path == c.path) {
                self.push(
                    "claims",
                    Effect::Tightens,
                    format!("claim `{}` is constrained: {text}", c.path),
                );
            }
        }
    }

    fn rules(&mut self) {
        let (old, new) = (self.old, self.new);
        for rule in &old.rules {
            match new.rules.iter().find(|r| r.name == rule.name) {
                None => self.push(
                    "rules",
                    Effect::Loosens,
                    format!("rule `{}` is gone", rule.name),
                ),
                Some(r) if self::rule(r) != self::rule(rule) => self.push(
                    "rules",
                    Effect::MayLoosen,
                    format!(
                        "rule `{}` changed (its conditions are not compared)",
                        rule.name
                    ),
                ),
                Some(_) => {}
            }
        }
        for rule in &new.rules {
            if !old.rules.iter().any(|r| r.name == rule.name) {
                self.push(
                    "rules",
                    Effect::Tightens,
                    format!("rule `{}` is new", rule.name),
                );
            }
        }
    }

    fn scopes(&mut self) {
        let (old, new) = (&self.old.scopes, &self.new.scopes);
        for (claim, format) in &new.claims {
            if !old.claims.contains(&(claim.clone(), *format)) {
                self.push(
                    "scopes",
                    Effect::MayLoosen,
                    format!(
                        "scopes are also read from `{claim}` as {} (more scopes may be granted)",
                        format.as_str()
                    ),
                );
            }
        }
        for (claim, format) in &old.claims {
            if !new.claims.contains(&(claim.clone(), *format)) {
                self.push(
                    "scopes",
                    Effect::Tightens,
                    format!(
                        "scopes are no longer read from `{claim}` as {}",
                        format.as_str()
                    ),
                );
            }
        }
        for scope in &old.required {
            if !new.required.contains(scope) {
                let witness = self.base_any().map(|mut w| {
                    if let Some((claim, format)) = new.claims.first() {
                        let kept = self.both_scopes(Some(scope));
                        w.claims.insert(claim.clone(), scope_value(&kept, *format));
                    }
                    w
                });
                self.loosens(
                    "scopes",
                    format!("scope `{scope}` is no longer required"),
                    witness,
                );
            }
        }
        for scope in &new.required {
            if !old.required.contains(scope) {
                self.push(
                    "scopes",
                    Effect::Tightens,
                    format!("scope `{scope}` is required"),
                );
            }
        }
    }

    fn client_ids(&mut self) {
        let (old, new) = (self.old, self.new);
        self.id_rule("client_id", &old.client_id, &new.client_id);
        match (&old.resource_client_id, &new.resource_client_id) {
            (Some(a), Some(b)) => self.id_rule("resource_client_id", a, b),
            (None, None) => {}
            (a, b) => {
                if id_rule(a.as_ref()) != id_rule(b.as_ref()) {
                    self.push(
                        "resource_client_id",
                        Effect::MayLoosen,
                        "this server's own client id is resolved differently".into(),
                    );
                }
            }
        }
    }

    fn id_rule(&mut self, concern: &'static str, old: &IdRule, new: &IdRule) {
        if old.required && !new.required {
            let witness = self.base_any().map(|mut w| {
                for source in &new.sources {
                    if let IdSource::Claim(name) = source {
                        w.claims.remove(name);
                    }
                }
                w
            });
            self.loosens(
                concern,
                format!("`{concern}` is no longer required"),
                witness.filter(|_| concern == "client_id"),
            );
        } else if !old.required && new.required {
            self.push(
                concern,
                Effect::Tightens,
                format!("`{concern}` is required"),
            );
        }
        if id_sources(old) != id_sources(new) {
            self.push(
                concern,
                Effect::MayLoosen,
                format!("where `{concern}` comes from, or the patterns it must match, changed"),
            );
        }
    }

    /// `serve` refuses an allowed request whose `[forward]` claim cannot be passed on as a header:
    /// a forwarded header NEW drops may let such requests through.
    fn forward(&mut self) {
        let key =
            |h: &super::model::ForwardHeader| format!("{} {} {:?}", h.header, h.path, h.separator);
        let new: Vec<String> = self.new.forward.iter().map(key).collect();
        for header in &self.old.forward {
            if !new.contains(&key(header)) {
                self.push(
                    "forward",
                    Effect::MayLoosen,
                    format!(
                        "`serve` no longer passes on `{}` as `{}` (a request whose claim could not be passed on was refused)",
                        header.path, header.header
                    ),
                );
            }
        }
    }

    /// Requirements of the routes: compared at every route path either policy names, for every
    /// method either names and one neither does. The requirement for any request equals the
    /// one at the deepest of those paths above it, so this covers every request.
    fn routes(&mut self) {
        let (old, new) = (self.old, self.new);
        let paths: BTreeSet<&str> = old
            .routes
            .iter()
            .chain(&new.routes)
            .map(|r| r.path.as_str())
            .collect();
        let mut methods: BTreeSet<&str> = old
            .routes
            .iter()
            .chain(&new.routes)
            .flat_map(|r| r.methods.iter().map(String::as_str))
            .collect();
        // A method no route lists.
        methods.insert("GET");
        methods.insert("X-ANY-OTHER-METHOD");
        for path in &paths {
            for method in &methods {
                let req = |p: &Policy| {
                    routes::matching(&p.routes, method, path)
                        .map(|r| r.requirement.clone())
                        .unwrap_or_default()
                };
                let (a, b) = (req(old), req(new));
                let shown_method = if *method == "X-ANY-OTHER-METHOD" {
                    "any other method".to_owned()
                } else {
                    (*method).to_owned()
                };
                for scope in a.scopes() {
                    if !b.scopes().contains(scope) {
                        let witness = self.base_any().map(|mut w| {
                            if let Some((claim, format)) = new.scopes.claims.first() {
                                let mut granted = new.scopes.required.clone();
                                for s in b.scopes() {
                                    if !granted.contains(s) {
                                        granted.push(s.clone());
                                    }
                                }
                                w.claims
                                    .insert(claim.clone(), scope_value(&granted, *format));
                            }
                            w.request = Some((method_for(method), (*path).to_owned()));
                            w
                        });
                        self.loosens(
                            "routes",
                            format!("{shown_method} {path} no longer needs scope `{scope}`"),
                            witness,
                        );
                    }
                }
                for scope in b.scopes() {
                    if !a.scopes().contains(scope) {
                        self.push(
                            "routes",
                            Effect::Tightens,
                            format!("{shown_method} {path} needs scope `{scope}`"),
                        );
                    }
                }
                for rule in a.rules() {
                    if !b.rules().contains(rule) {
                        self.push(
                            "routes",
                            Effect::Loosens,
                            format!("{shown_method} {path} no longer applies rule `{rule}`"),
                        );
                    }
                }
                for rule in b.rules() {
                    if !a.rules().contains(rule) {
                        self.push(
                            "routes",
                            Effect::Tightens,
                            format!("{shown_method} {path} applies rule `{rule}`"),
                        );
                    }
                }
            }
        }
    }
}

/// A method to send for a witness: the placeholder for "any other" becomes a real one.
fn method_for(method: &str) -> String {
    if method == "X-ANY-OTHER-METHOD" {
        "PATCH".into()
    } else {
        method.into()
    }
}

fn presence(p: Presence) -> &'static str {
    match p {
        Presence::Required => "required",
        Presence::Optional => "optional",
        Presence::Ignored => "ignored",
    }
}

/// The scope claim's value granting `scopes`, written as `format` says.
fn scope_value(scopes: &[String], format: ValueFormat) -> Value {
    match format {
        ValueFormat::Array => json!(scopes),
        _ => json!(scopes.join(" ")),
    }
}

fn keys_kind(keys: Option<&IssuerKeys>) -> &'static str {
    match keys {
        Some(IssuerKeys::Static(_)) => "a key set file or inline JWKS",
        Some(IssuerKeys::Remote(_)) => "a remote key set",
        None => "HMAC secrets only",
    }
}

/// What identifies a static key for the comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KeyId {
    kid: Option<String>,
    alg: Option<&'static str>,
    /// The public key's bytes; `None` for a secret (its value is not compared).
    material: Option<Vec<u8>>,
}

impl KeyId {
    fn describe(&self) -> String {
        match &self.kid {
            Some(kid) => format!("`{kid}`"),
            None => "without `kid`".into(),
        }
    }
}

fn key_ids(keys: &crate::jwks::KeySet) -> BTreeSet<KeyId> {
    keys.keys()
        .iter()
        .map(|k| KeyId {
            kid: k.kid().map(str::to_owned),
            alg: k.alg().map(Algorithm::as_str),
            material: k.public_bytes().map(<[u8]>::to_vec),
        })
        .collect()
}

/// A canonical text of a constraint: equal texts test the same.
fn constraint(c: &Constraint) -> String {
    let mut text = format!("{} if_present={}", c.path, c.if_present);
    for test in &c.tests {
        let _ = write!(text, "; {}", claim_test(test));
    }
    text
}

fn claim_test(test: &ClaimTest) -> String {
    let list = |v: &[String]| v.join(",");
    match test {
        ClaimTest::Present(p) => format!("present={p}"),
        ClaimTest::Equals(l) => format!("equals={l}"),
        ClaimTest::OneOf(ls) => format!(
            "one_of={}",
            ls.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        ClaimTest::Prefix(s) => format!("prefix={s:?}"),
        ClaimTest::Suffix(s) => format!("suffix={s:?}"),
        ClaimTest::Regex(p) => format!("regex={:?}", p.as_str()),
        ClaimTest::Contains(s, f) => format!("contains={s:?} {}", f.as_str()),
        ClaimTest::ContainsAny(v, f) => format!("contains_any={} {}", list(v), f.as_str()),
        ClaimTest::ContainsAll(v, f) => format!("contains_all={} {}", list(v), f.as_str()),
        ClaimTest::Type(t) => format!("type={}", t.as_str()),
    }
}

fn condition(c: &Condition) -> String {
    match c {
        Condition::Claim(c) => format!("({})", constraint(c)),
        Condition::All(cs) => format!(
            "all[{}]",
            cs.iter().map(condition).collect::<Vec<_>>().join(" ")
        ),
        Condition::Any(cs) => format!(
            "any[{}]",
            cs.iter().map(condition).collect::<Vec<_>>().join(" ")
        ),
        Condition::Not(c) => format!("not {}", condition(c)),
    }
}

fn rule(r: &Rule) -> String {
    format!(
        "{} permission={} route_only={} when={} require={}",
        r.name,
        r.permission,
        r.route_only,
        r.when.as_ref().map(condition).unwrap_or_default(),
        condition(&r.require)
    )
}

fn pattern(p: Option<&Pattern>) -> String {
    p.map(|p| p.as_str().to_owned()).unwrap_or_default()
}

/// A canonical text of an id rule (empty for none).
fn id_rule(r: Option<&IdRule>) -> String {
    r.map(|r| format!("required={} {}", r.required, id_sources(r)))
        .unwrap_or_default()
}

/// Where an id comes from and the patterns it must (not) match, without whether it is required.
fn id_sources(r: &IdRule) -> String {
    format!(
        "{:?} allow={} refuse={}",
        r.sources,
        pattern(r.allow.as_ref()),
        r.refuse
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(",")
    )
}
