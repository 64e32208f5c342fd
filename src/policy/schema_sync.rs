//! `schema.json` (printed by `jwt-policy schema`) lists exactly the keys the reader knows, table
//! by table: the reader records the keys each table asks for while it reads the shipped policies
//! and a policy that opens every table, and each table's keys are compared with the schema's
//! `properties` at the same place, both ways.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::keys_read::{self, Keys};
use crate::policy::Policy;

const SCHEMA: &str = include_str!("schema.json");

fn schema() -> Value {
    serde_json::from_str(SCHEMA).unwrap()
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The policy that opens every table.
fn kitchen_sink() -> PathBuf {
    repo("tests/fixtures/schema/kitchen-sink.toml")
}

/// `policies/*.toml`, without `*.tests.toml`.
fn shipped_policies() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".toml") && !name.ends_with(".tests.toml")
        })
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

/// The keys the reader asks for in each table of these policies.
fn keys_read(paths: &[PathBuf]) -> Keys {
    keys_read::start();
    for path in paths {
        let read = Policy::from_file(path);
        // The keys of a table are asked for whatever the values are; the policies are valid all
        // the same (the kitchen sink's remote key sources need the `remote` feature).
        if cfg!(feature = "remote")
            && let Err(e) = read
        {
            panic!("{}: {e}", path.display());
        }
    }
    keys_read::take()
}

/// Follows a `$ref` to a definition of this schema.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').unwrap();
            resolve(root, root.pointer(pointer).unwrap())
        }
        None => node,
    }
}

/// `node` and the alternatives it allows (`oneOf`, `anyOf`), references followed. The
/// subschemas that only constrain (`not`, `if`/`then`, `dependencies`) are not forms of a value.
fn forms<'a>(root: &'a Value, node: &'a Value, out: &mut Vec<&'a Value>) {
    let node = resolve(root, node);
    out.push(node);
    for key in ["oneOf", "anyOf"] {
        for alternative in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            forms(root, alternative, out);
        }
    }
}

/// The table forms (objects with `properties`) of the value at `path` (`issuers[].hmac_secrets[]`).
fn tables_at<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut nodes = vec![root];
    let steps = path
        .split('.')
        .filter(|s| !s.is_empty())
        .flat_map(|segment| {
            let key = segment.trim_end_matches("[]");
            let items = (segment.len() - key.len()) / 2;
            std::iter::once(Some(key)).chain(std::iter::repeat_n(None, items))
        });
    for step in steps {
        let mut all = Vec::new();
        for node in nodes {
            forms(root, node, &mut all);
        }
        nodes = all
            .into_iter()
            .filter_map(|node| match step {
                Some(key) => node.get("properties").and_then(|p| p.get(key)),
                None => node.get("items"),
            })
            .collect();
    }
    let mut all = Vec::new();
    for node in nodes {
        forms(root, node, &mut all);
    }
    all.into_iter()
        .filter(|node| node.get("properties").is_some())
        .collect()
}

/// Every table path of the schema, a definition not entered again inside itself
/// (`rules[].require`, not `rules[].require.all[]`).
fn schema_tables(root: &Value) -> BTreeSet<String> {
    fn walk(
        root: &Value,
        node: &Value,
        path: &str,
        seen: &mut Vec<String>,
        out: &mut BTreeSet<String>,
    ) {
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            if seen.iter().any(|s| s == r) {
                return;
            }
            seen.push(r.to_owned());
            walk(root, resolve(root, node), path, seen, out);
            seen.pop();
            return;
        }
        for key in ["oneOf", "anyOf"] {
            for alternative in node
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                walk(root, alternative, path, seen, out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(root, items, &format!("{path}[]"), seen, out);
        }
        if let Some(properties) = node.get("properties").and_then(Value::as_object) {
            out.insert(path.to_owned());
            for (key, value) in properties {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(root, value, &child, seen, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, "", &mut Vec::new(), &mut out);
    out
}

/// What differs between the keys `read` and the schema: a key one side has and the other not, a
/// table of one side the other lacks, a schema table that allows unknown keys.
fn problems(root: &Value, read: &Keys) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, keys) in read {
        let tables = tables_at(root, path);
        let table = shown(path);
        if tables.is_empty() {
            problems.push(format!(
                "the reader reads {table}, the schema has no table there"
            ));
            continue;
        }
        let listed: BTreeSet<&str> = tables
            .iter()
            .flat_map(|t| t["properties"].as_object().unwrap().keys())
            .map(String::as_str)
            .collect();
        for key in keys.difference(&listed) {
            problems.push(format!(
                "{table}: the reader knows `{key}`, the schema does not list it"
            ));
        }
        for key in listed.difference(keys) {
            problems.push(format!(
                "{table}: the schema lists `{key}`, the reader rejects it"
            ));
        }
        if tables
            .iter()
            .any(|t| t.get("additionalProperties") != Some(&Value::Bool(false)))
        {
            problems.push(format!(
                "{table}: the reader rejects unknown keys, the schema allows them"
            ));
        }
    }
    // What the policies read must open for the comparison to cover the whole schema.
    for path in schema_tables(root) {
        if !read.contains_key(&path) {
            problems.push(format!(
                "{}: the schema has this table, no policy read opened it (add it to the kitchen sink)",
                shown(&path)
            ));
        }
    }
    problems
}

/// A table path in messages.
fn shown(path: &str) -> String {
    match path {
        "" => "the top level".to_owned(),
        path => format!("`{path}`"),
    }
}

/// The shipped policies and the kitchen sink, read.
fn all_keys_read() -> Keys {
    let mut policies = shipped_policies();
    policies.push(kitchen_sink());
    keys_read(&policies)
}

/// Every key the reader asks for in a table is a property of the schema there, and every
/// property is a key the reader asks for; every such table refuses other keys.
#[test]
fn schema_lists_exactly_the_keys_the_reader_knows() {
    let problems = problems(&schema(), &all_keys_read());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The comparison sees a key the schema lacks, a key the reader lacks, a table either lacks,
/// and a table that would take unknown keys: nested, in arrays of tables and through the
/// recursive condition definition too.
#[test]
fn the_comparison_finds_each_kind_of_difference() {
    let read = all_keys_read();
    let mut root = schema();
    let time = root["properties"]["time"]["properties"]
        .as_object_mut()
        .unwrap();
    time.remove("max_age");
    time.insert("max_skew".into(), serde_json::json!({ "type": "integer" }));
    let secret = &mut root["properties"]["issuers"]["items"]["properties"]["hmac_secrets"]["items"];
    secret["additionalProperties"] = Value::Bool(true);
    root["definitions"]["constraint"]["properties"]
        .as_object_mut()
        .unwrap()
        .remove("suffix");
    root["properties"]
        .as_object_mut()
        .unwrap()
        .remove("forward");
    assert_eq!(
        problems(&root, &read),
        [
            "the top level: the reader knows `forward`, the schema does not list it",
            "`claims.constraints[]`: the reader knows `suffix`, the schema does not list it",
            "the reader reads `forward`, the schema has no table there",
            "the reader reads `forward.headers[]`, the schema has no table there",
            "`issuers[].hmac_secrets[]`: the reader rejects unknown keys, the schema allows them",
            "`rules[].require`: the reader knows `suffix`, the schema does not list it",
            "`rules[].require.any[]`: the reader knows `suffix`, the schema does not list it",
            "`rules[].require.any[].all[]`: the reader knows `suffix`, the schema does not list it",
            "`rules[].require.any[].not`: the reader knows `suffix`, the schema does not list it",
            "`rules[].when`: the reader knows `suffix`, the schema does not list it",
            "`time`: the reader knows `max_age`, the schema does not list it",
            "`time`: the schema lists `max_skew`, the reader rejects it",
        ]
    );
    let mut without_cache = read.clone();
    without_cache.remove("cache");
    assert_eq!(
        problems(&schema(), &without_cache),
        [
            "`cache`: the schema has this table, no policy read opened it (add it to the kitchen sink)"
        ]
    );
}

/// `[vars]` is the one table whose keys are the user's own: any key, each a string.
#[test]
fn vars_take_any_key_holding_a_string() {
    let root = schema();
    let vars = &root["properties"]["vars"];
    assert!(vars.get("properties").is_none());
    assert_eq!(vars["additionalProperties"]["type"], "string");
}

#[test]
fn table_paths_leave_out_indexes() {
    assert_eq!(keys_read::path("policy"), "");
    assert_eq!(keys_read::path("[time]"), "time");
    assert_eq!(
        keys_read::path("issuers[10].hmac_secrets[0]"),
        "issuers[].hmac_secrets[]"
    );
    assert_eq!(
        keys_read::path("rules[0].require.all[1].not"),
        "rules[].require.all[].not"
    );
}
