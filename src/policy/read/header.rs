//! `[header]`: the accepted `typ` values, whether `kid` is required, and the `crit` extensions
//! the service processes itself.

use super::{or_default, values};
use crate::policy::diagnostic::DiagnosticKind;
use crate::policy::model::{HeaderRules, Presence};
use crate::policy::reader::{Reader, Value};

const KID_PRESENCE: &[(&str, Presence)] = &[
    ("required", Presence::Required),
    ("optional", Presence::Optional),
];

pub(super) fn read_header(r: &mut Reader, v: &Value<'_>) -> Option<HeaderRules> {
    let mut t = r.table(v, "[header]")?;
    let typ = or_default(t.get("typ"), Vec::new(), |v| {
        r.strings(v, "header.typ").map(|list| {
            let mut types: Vec<String> = Vec::new();
            for t in list.iter().map(|s| crate::token::media_type(&s.value)) {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            types
        })
    });
    let kid = or_default(t.get("kid"), Presence::Required, |v| {
        r.choice(v, "header.kid", KID_PRESENCE)
    });
    let crit = or_default(t.get("crit"), Vec::new(), |v| {
        let names = r.strings(v, "header.crit")?;
        let mut ok = true;
        for name in &names {
            let problem = if crate::token::REGISTERED_HEADER_PARAMETERS
                .contains(&name.value.as_str())
            {
                "is a registered header parameter, which `crit` never lists (RFC 7515 §4.1.11)"
            } else if name.value == "b64" {
                "changes how the signature is computed (RFC 7797), which jwt-policy does not implement"
            } else {
                continue;
            };
            r.error(
                DiagnosticKind::InvalidValue,
                name.span.clone(),
                format!("`{}` {problem}", name.value),
                "list only extensions your service processes itself",
            );
            ok = false;
        }
        ok.then(|| values(names))
    });
    t.finish(r);
    Some(HeaderRules {
        typ: typ?,
        kid: kid?,
        crit: crit?,
    })
}
