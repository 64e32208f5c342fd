//! Structured input: a header and claims built from good ones with arbitrary changes, signed with
//! the policy's own key so they pass the signature, through the full evaluation. Checks the
//! invariants a service relies on:
//! * never the `internal` reason; a deny always has a reason;
//! * an allow has no failed check, an accepted audience, a client id, the required scope, an
//!   unexpired `exp`, and a zone audience only with `resource` naming this resource;
//! * claims of a token whose signature did not verify are never evaluated.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_policy::{Outcome, Policy, PolicyEngine, Reason, UnixTime};
use libfuzzer_sys::fuzz_target;

const RESOURCE: &str = "https://mcp.example.com/mcp";
const ZONE: &str = "https://abc123.keycard.cloud";
const NOW: i64 = 1_767_225_600;
const KID: &str = "fuzz-ed";

/// Names the policy cares about, and any other.
#[derive(Arbitrary, Debug, Clone)]
enum Name {
    Alg,
    Typ,
    Kid,
    Crit,
    Iss,
    Aud,
    Resource,
    Exp,
    Nbf,
    Iat,
    Scope,
    Scp,
    ClientId,
    Azp,
    Sub,
    Other(String),
}

impl Name {
    fn as_str(&self) -> &str {
        match self {
            Self::Alg => "alg",
            Self::Typ => "typ",
            Self::Kid => "kid",
            Self::Crit => "crit",
            Self::Iss => "iss",
            Self::Aud => "aud",
            Self::Resource => "resource",
            Self::Exp => "exp",
            Self::Nbf => "nbf",
            Self::Iat => "iat",
            Self::Scope => "scope",
            Self::Scp => "scp",
            Self::ClientId => "client_id",
            Self::Azp => "azp",
            Self::Sub => "sub",
            Self::Other(s) => s,
        }
    }
}

/// Strings the policy cares about, and any other.
#[derive(Arbitrary, Debug, Clone)]
enum Word {
    Resource,
    Zone,
    Tools,
    ToolsAndMore,
    AtJwt,
    EdDsa,
    Kid,
    Other(String),
}

impl Word {
    fn text(&self) -> String {
        match self {
            Self::Resource => RESOURCE.into(),
            Self::Zone => ZONE.into(),
            Self::Tools => "mcp:tools".into(),
            Self::ToolsAndMore => "mcp:resources mcp:tools".into(),
            Self::AtJwt => "at+jwt".into(),
            Self::EdDsa => "EdDSA".into(),
            Self::Kid => KID.into(),
            Self::Other(s) => s.clone(),
        }
    }
}

/// A JSON value, written out as text (so numbers keep any spelling).
#[derive(Arbitrary, Debug, Clone)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    /// Seconds around the fixed clock.
    Time(i32),
    /// `whole.fraction` seconds around the fixed clock.
    Fraction(i32, u32),
    /// `mantissa e exponent`.
    Exponent(i32, i16),
    Str(Word),
    Array(Vec<Val>),
    Object(Vec<(Word, Val)>),
}

impl Val {
    fn json(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Int(n) => out.push_str(&n.to_string()),
            Self::Time(d) => out.push_str(&(NOW + i64::from(*d)).to_string()),
            Self::Fraction(d, f) => out.push_str(&format!("{}.{f}", NOW + i64::from(*d))),
            Self::Exponent(m, e) => out.push_str(&format!("{m}e{e}")),
            Self::Str(w) => out.push_str(&serde_json::Value::String(w.text()).to_string()),
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.json(out);
                }
                out.push(']');
            }
            Self::Object(members) => {
                out.push('{');
                for (i, (name, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(name.text()).to_string());
                    out.push(':');
                    value.json(out);
                }
                out.push('}');
            }
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Header members to set (`Some`) or remove (`None`).
    header: Vec<(Name, Option<Val>)>,
    /// Claims to set or remove.
    claims: Vec<(Name, Option<Val>)>,
    /// The decision time, in seconds around the fixed clock.
    now: i16,
}

/// Members in order; setting replaces in place, removing deletes.
fn apply(base: Vec<(String, String)>, changes: &[(Name, Option<Val>)]) -> Vec<(String, String)> {
    let mut members = base;
    for (name, value) in changes {
        let name = name.as_str().to_owned();
        match value {
            Some(value) => {
                let mut text = String::new();
                value.json(&mut text);
                match members.iter_mut().find(|(n, _)| *n == name) {
                    Some(member) => member.1 = text,
                    None => members.push((name, text)),
                }
            }
            None => members.retain(|(n, _)| *n != name),
        }
    }
    members
}

fn object(members: &[(String, String)]) -> String {
    let inner: Vec<String> = members
        .iter()
        .map(|(n, v)| format!("{}:{v}", serde_json::Value::String(n.clone())))
        .collect();
    format!("{{{}}}", inner.join(","))
}

struct Fixture {
    key: Ed25519KeyPair,
    engine: PolicyEngine,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let key = Ed25519KeyPair::generate().expect("key");
        let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
        let jwks = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"{KID}","x":"{x}"}}]}}"#);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/keycard-mcp.toml");
        let text = std::fs::read_to_string(path).expect("the shipped policy");
        let text = text.replace("jwks_file = \"keycard-mcp.jwks.json\"", &format!("jwks = '{jwks}'"));
        let policy = Policy::from_toml("fuzz.toml", text, ".").expect("valid policy");
        let engine = PolicyEngine::builder(policy)
            .context("credential.key_id", "fuzz-key")
            .build()
            .expect("engine");
        Fixture { key, engine }
    })
}

/// The values of a claim as the policy reads `aud` and `resource`: a string, or strings in an array.
fn strings(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => {
            items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect()
        }
        _ => Vec::new(),
    }
}

fuzz_target!(|input: Input| {
    let f = fixture();
    let header = apply(
        vec![
            ("alg".into(), "\"EdDSA\"".into()),
            ("typ".into(), "\"at+jwt\"".into()),
            ("kid".into(), format!("\"{KID}\"")),
        ],
        &input.header,
    );
    let claims = apply(
        vec![
            ("iss".into(), format!("\"{ZONE}\"")),
            ("sub".into(), "\"user-1\"".into()),
            ("aud".into(), format!("\"{RESOURCE}\"")),
            ("exp".into(), (NOW + 3600).to_string()),
            ("iat".into(), (NOW - 60).to_string()),
            ("scope".into(), "\"mcp:tools\"".into()),
            ("client_id".into(), "\"client-1\"".into()),
        ],
        &input.claims,
    );
    let members = claims;
    let (header, claims) = (object(&header), object(&members));
    let input_text = format!("{}.{}", URL_SAFE_NO_PAD.encode(&header), URL_SAFE_NO_PAD.encode(&claims));
    let signature = f.key.sign(input_text.as_bytes());
    let token = format!("{input_text}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
    let now = NOW + i64::from(input.now);
    let decision = f.engine.evaluate_at(&token, UnixTime::from_secs(now));

    assert_ne!(decision.reason(), Some(Reason::Internal), "{}", decision.explain());
    assert_eq!(decision.is_allowed(), decision.reason().is_none(), "{}", decision.explain());
    let signature_ok = decision
        .checks()
        .iter()
        .any(|c| c.rule() == "signature" && c.outcome() == &Outcome::Passed);
    if !signature_ok {
        for c in decision.checks() {
            if ["exp", "nbf", "iat", "audience", "resource", "scopes", "client_id"].contains(&c.rule()) {
                assert_eq!(c.outcome(), &Outcome::NotEvaluated, "{}", decision.explain());
            }
        }
        assert!(decision.principal().subject.is_none());
    }
    if decision.is_allowed() {
        // The claims the engine saw, one member at a time (others may hold numbers serde_json
        // refuses, such as `1e400`, which no rule reads).
        let claim = |name: &str| -> Option<serde_json::Value> {
            let (_, text) = members.iter().find(|(n, _)| n == name)?;
            Some(serde_json::from_str(text).expect("a claim the policy reads is plain JSON"))
        };
        let p = decision.principal();
        let audience = p.audience.as_deref().expect("an allow names its audience");
        assert!(audience == RESOURCE || audience == ZONE, "{audience}");
        let aud = strings(claim("aud").as_ref());
        assert!(aud.iter().any(|a| a == audience));
        if audience == ZONE && !aud.iter().any(|a| a == RESOURCE) {
            assert!(strings(claim("resource").as_ref()).iter().any(|r| r == RESOURCE), "{claims}");
        }
        assert!(p.client_id.is_some());
        assert!(p.scopes.iter().any(|s| s == "mcp:tools"));
        let exp = claim("exp").and_then(|e| e.as_f64()).expect("allowed tokens have exp");
        // Exactly `now < exp + 30` in the engine; `<=` here absorbs f64 rounding.
        assert!((now as f64) <= exp + 30.0, "now {now}, exp {exp}");
        for c in decision.checks() {
            assert!(c.reason().is_none(), "{}", decision.explain());
        }
    }
});
