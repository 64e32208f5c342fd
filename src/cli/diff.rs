//! `jwt-policy diff OLD NEW`

use std::path::PathBuf;

use crate::cli::{EXIT_DENY, EXIT_ERROR, EXIT_OK, say};
use crate::policy::Policy;
use crate::policy::diff::{Change, Effect, diff};

/// Arguments of `diff`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The policy in effect.
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The policy to compare with it.
    #[arg(value_name = "NEW")]
    new: PathBuf,
}

/// Prints what NEW accepts that OLD refused (`+`), what it may accept (`?`) and what it
/// refuses that OLD accepted (`-`), by concern; exit 0 when NEW provably accepts nothing OLD
/// refused, 1 when it does or may, 2 when a policy cannot be read.
pub(crate) fn run(args: &Args) -> u8 {
    let read = |path: &PathBuf| {
        Policy::from_file(path).map_err(|e| {
            eprintln!("{e}");
        })
    };
    let (Ok(old), Ok(new)) = (read(&args.old), read(&args.new)) else {
        return EXIT_ERROR;
    };
    let changes = diff(&old, &new);
    say(render(&old, &new, &changes).trim_end());
    if changes.iter().any(|c| c.effect != Effect::Tightens) {
        EXIT_DENY
    } else {
        EXIT_OK
    }
}

/// The report: a header, the changes grouped by concern, and a summary line.
fn render(old: &Policy, new: &Policy, changes: &[Change]) -> String {
    let mut out = format!(
        "OLD {} (revision {})\nNEW {} (revision {})\n",
        old.name(),
        old.revision(),
        new.name(),
        new.revision()
    );
    let mut concern = "";
    for change in changes {
        if change.concern != concern {
            concern = change.concern;
            out.push_str(&format!("\n{concern}\n"));
        }
        let mark = match change.effect {
            Effect::Loosens => "+ accepts",
            Effect::MayLoosen => "? may accept",
            Effect::Tightens => "- refuses",
        };
        out.push_str(&format!("  {mark}: {}\n", change.text));
        if let Some(w) = &change.witness {
            let object = |m: &serde_json::Map<String, serde_json::Value>| {
                serde_json::Value::Object(m.clone()).to_string()
            };
            if let Some((method, path)) = &w.request {
                out.push_str(&format!("      request: {method} {path}\n"));
            }
            out.push_str(&format!("      header:  {}\n", object(&w.header)));
            out.push_str(&format!("      claims:  {}\n", object(&w.claims)));
            out.push_str(&format!("      at:      {}\n", w.at));
        }
    }
    let count = |effect| changes.iter().filter(|c| c.effect == effect).count();
    let (loosens, may, tightens) = (
        count(Effect::Loosens),
        count(Effect::MayLoosen),
        count(Effect::Tightens),
    );
    out.push('\n');
    out.push_str(&if loosens + may == 0 {
        format!(
            "NEW accepts nothing OLD refused ({tightens} change{} refuse{} more)\n",
            plural(tightens),
            if tightens == 1 { "s" } else { "" }
        )
    } else {
        format!(
            "NEW accepts tokens OLD refused: {loosens} change{} accept{} more, {may} may; {tightens} refuse{} more\n",
            plural(loosens),
            if loosens == 1 { "s" } else { "" },
            if tightens == 1 { "s" } else { "" }
        )
    });
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
