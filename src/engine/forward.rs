//! `[forward]`: verified claims passed on as request headers by `jwt-policy serve`.

use super::decision::Claims;
use crate::json::{self, Json};
use crate::policy::Policy;

/// A claim the policy forwards as a header holds a value a header cannot carry faithfully; the
/// request is refused rather than forwarded without it (or with something else).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim `{claim}` cannot be forwarded as header `{header}`: {why}")]
pub struct ForwardError {
    /// The claim path, dotted.
    pub claim: String,
    /// The header it was to go in.
    pub header: String,
    /// What is wrong with its value.
    pub why: String,
}

#[cfg(feature = "cli")]
impl super::decision::Decision {
    /// This allowing decision as a denial because a verified claim cannot be passed on as the
    /// header `error` names (`[forward]`, or an identity header of `jwt-policy serve`): a failed
    /// check `forward:<header>` with reason `invalid_claim` (HTTP 401), and no claims handed
    /// over. The request is refused rather than forwarded without the value, or with another.
    pub(crate) fn refuse_forwarding(&self, error: &ForwardError) -> Self {
        use super::decision::{Check, Outcome, Reason, Verdict};
        use std::sync::Arc;

        let mut checks = self.checks().to_vec();
        checks.push(Check {
            rule: format!("forward:{}", error.header).into(),
            outcome: Outcome::Failed {
                reason: Reason::InvalidClaim,
                expected: "a value a header can carry: printable ASCII".to_owned(),
                observed: error.why.clone(),
            },
            detail: error.to_string(),
        });
        Self::with_checks(
            Verdict::Deny,
            self.principal().clone(),
            checks,
            self.required_scopes().to_vec(),
            None,
            Arc::from(self.policy_revision()),
        )
    }
}

/// The `[forward]` headers for these verified claims, in policy order: a string as is, a number
/// as its JSON text, a boolean as `true`/`false`, an array of those joined by the entry's
/// separator; an absent claim sets no header. A value that is not printable ASCII, an object,
/// `null`, or an array holding one of those is an error.
pub(crate) fn headers(
    policy: &Policy,
    claims: &Claims,
) -> Result<Vec<(String, String)>, ForwardError> {
    if policy.forward.is_empty() {
        return Ok(Vec::new());
    }
    // The claims parsed strictly once already; they parse again the same way.
    let object = json::parse_object(claims.json().as_bytes(), crate::token::MAX_JSON_DEPTH)
        .map_err(|e| ForwardError {
            claim: String::new(),
            header: String::new(),
            why: e.to_string(),
        })?;
    let mut out = Vec::with_capacity(policy.forward.len());
    for entry in &policy.forward {
        let fail = |why: String| ForwardError {
            claim: entry.path.to_string(),
            header: entry.header.clone(),
            why,
        };
        let Some(value) = super::claims::lookup(&object, &entry.path) else {
            continue;
        };
        let text = match value {
            Json::Array(items) => items
                .iter()
                .map(scalar)
                .collect::<Result<Vec<String>, String>>()
                .map(|parts| parts.join(&entry.separator)),
            other => scalar(other),
        }
        .map_err(fail)?;
        if let Some(bad) = text.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(fail(format!(
                "it holds {}, which is not printable ASCII",
                bad.escape_default()
            )));
        }
        out.push((entry.header.clone(), text));
    }
    Ok(out)
}

fn scalar(value: &Json) -> Result<String, String> {
    match value {
        Json::String(s) => Ok(s.to_string()),
        Json::Number(n) => Ok(n.as_str().to_owned()),
        Json::Bool(b) => Ok(b.to_string()),
        other => Err(format!(
            "it is {}, not a string, number, boolean or array of those",
            super::claims::a(other)
        )),
    }
}
