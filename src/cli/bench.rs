//! `jwt-policy bench --policy POLICY [--jwks FILE | --jwks-url URL] --tokens-file FILE
//! [--threads N] [--seconds S]`: what deciding about these tokens costs, in process, against the
//! signature check alone.
//!
//! Every token is decided once first, and the output says how many were allowed and why the
//! others were denied: a deny can stop before the signature check, so a corpus that denies
//! measures something else. Then rounds: in each, every thread runs each measure over every
//! token, the measures interleaved (their order rotates from round to round), and each thread
//! reads its own CPU clock around each pass. The figures are medians over rounds; the ratio to
//! the floor is paired within a round, so a slow round (another process on the core) slows both
//! sides of it.
//!
//! The decision is measured with the verified-decision cache off, then on (whatever the policy's
//! `[cache]` says; its bounds when it has one): the cached engine decides every token once to
//! fill its cache before anything is timed, so its row is what a repeated token costs.

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;

use crate::cli::{
    EXIT_ERROR, EXIT_OK, EngineArgs, Engines, build_error, current_thread_runtime, read_policy,
};
use crate::policy::SecretSource;
use crate::{Policy, PolicyEngine, Reason, UnixTime};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The policy file.
    #[arg(long, value_name = "POLICY")]
    policy: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
    /// The tokens, one per line (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    tokens_file: PathBuf,
    /// Also measure with N threads deciding at once (each thread decides every token).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// Time for all the measuring, in seconds (at least 3 rounds per thread count are run).
    #[arg(long, value_name = "SECONDS", default_value = "10")]
    seconds: String,
}

/// Rounds per thread count, at least, whatever `--seconds` says: a median needs three.
const MIN_ROUNDS: usize = 3;
/// Rounds per thread count, at most (a tiny corpus with a long budget).
const MAX_ROUNDS: usize = 100_000;

/// Runs `bench` and returns the exit code.
pub(crate) fn run(args: &Args) -> Result<u8, String> {
    let budget = seconds(&args.seconds)?;
    let now = args.engine.now()?.unwrap_or_else(UnixTime::now);
    let Some(policy) = read_policy(&args.policy) else {
        return Ok(EXIT_ERROR);
    };
    let engines = Engines::new(&args.engine, &policy)?;
    let floor_keys = FloorKeys::new(&args.engine, &policy);
    let revision = policy.revision().to_owned();
    // Remote keys are fetched here, before anything is timed; the runtime lives as long as the
    // engine.
    let runtime = current_thread_runtime()?;
    let cache = policy.cache().unwrap_or_default();
    let engine = runtime
        .block_on(engines.builder(policy.clone()).cache(None).build_async())
        .map_err(|e| build_error(&e))?;
    let cached = runtime
        .block_on(engines.builder(policy).cache(Some(cache)).build_async())
        .map_err(|e| build_error(&e))?;
    let tokens = read_tokens(&args.tokens_file)?;

    println!(
        "policy `{}`, revision {revision}, at {now}",
        args.policy.display()
    );
    let checked = Checked::new(&engine, &tokens, now);
    // Filled: every token decided once.
    Checked::new(&cached, &tokens, now);
    println!("`{}`: {}", args.tokens_file.display(), checked.summary());
    if checked.denied > 0 {
        println!(
            "note: denied tokens are measured too: these figures mix the cost of allowing and of \
             denying (a deny can stop before the signature check)"
        );
    }

    let floor = match &floor_keys {
        Ok(keys) => Floor::new(keys, &tokens),
        Err(why) => Floor {
            tokens: Vec::new(),
            missing: Some(why.clone()),
        },
    };
    match (&floor.missing, floor.tokens.len()) {
        (Some(why), 0) => println!(
            "note: no signature-only floor: {why}\n  help: keys written in the policy or fetched \
             are read by the engine only: pass the same JWK set as `--jwks FILE`"
        ),
        (Some(why), covered) => println!(
            "note: the floor covers {covered} of {} tokens ({why})",
            tokens.len()
        ),
        (None, _) => {}
    }
    if thread_cpu().is_none() {
        println!("note: no thread CPU clock on this platform: CPU per token is wall time");
    }

    let bench = Bench {
        engine: &engine,
        cached: &cached,
        tokens: &tokens,
        floor: &floor.tokens,
        now,
    };
    let counts: Vec<usize> = if args.threads > 1 {
        vec![1, usize::from(args.threads)]
    } else {
        vec![1]
    };
    let share = budget / u32::try_from(counts.len()).unwrap_or(1);
    let mut results = Vec::with_capacity(counts.len());
    for &threads in &counts {
        results.push(bench.measure(threads, share)?);
    }

    println!();
    print!("{}", table(&results));
    println!();
    let rounds: Vec<String> = results
        .iter()
        .map(|r| format!("{}: {} rounds", threads_label(r.threads), r.rounds))
        .collect();
    println!(
        "{}; each thread runs each measure over every token once a round",
        rounds.join(", ")
    );
    if let [one, many] = results.as_slice() {
        let changes: Vec<String> = one
            .rows
            .iter()
            .zip(&many.rows)
            .map(|(a, b)| {
                let change = match (a.cpu_per_token, b.cpu_per_token) {
                    (Some(a), Some(b)) if a > 0.0 => format!("{:+.1} %", (b / a - 1.0) * 100.0),
                    _ => "n/a".into(),
                };
                format!("{} {change}", a.measure.label())
            })
            .collect();
        println!(
            "{} vs 1, CPU per token: {}",
            threads_label(many.threads),
            changes.join(", ")
        );
    }
    if let Some(stats) = cached.cache_stats() {
        println!(
            "decision cache: {} hits, {} misses, {} inserts, {} evictions; at most {} entries and {} bytes",
            stats.hits,
            stats.misses,
            stats.inserts,
            stats.evictions,
            cache.max_entries(),
            cache.max_bytes()
        );
    }
    println!(
        "tokens/s: all threads together, per second of wall time; CPU per token: thread CPU \
         time; × floor: CPU per token over the floor's in the same round; medians over rounds"
    );
    Ok(EXIT_OK)
}

/// `--seconds`: a positive, finite number of seconds.
fn seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            format!("`--seconds {text}` is not a positive number of seconds (e.g. `10`)")
        })
}

/// The lines of `path` (`-`: stdin), each minus its line ending; a last line ending starts no
/// token.
fn read_tokens(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let unreadable = |e: std::io::Error| {
        format!(
            "cannot read `{}`: {}",
            path.display(),
            crate::text::io_message(&e)
        )
    };
    let bytes = if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        bytes
    } else {
        std::fs::read(path).map_err(unreadable)?
    };
    let mut tokens: Vec<Vec<u8>> = bytes
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line).to_vec())
        .collect();
    if tokens.last().is_some_and(Vec::is_empty) {
        tokens.pop();
    }
    if tokens.is_empty() {
        return Err(format!("`{}` has no tokens (one a line)", path.display()));
    }
    Ok(tokens)
}

/// What the engine decides about each token, before anything is timed.
struct Checked {
    total: usize,
    denied: usize,
    /// Denials by reason code.
    reasons: BTreeMap<&'static str, usize>,
}

impl Checked {
    fn new(engine: &PolicyEngine, tokens: &[Vec<u8>], now: UnixTime) -> Self {
        let mut reasons = BTreeMap::new();
        let mut denied = 0;
        for token in tokens {
            let decision = engine.evaluate_at(token, now);
            if !decision.is_allowed() {
                denied += 1;
                let reason = decision.reason().map_or("no_reason", Reason::as_str);
                *reasons.entry(reason).or_insert(0) += 1;
            }
        }
        Self {
            total: tokens.len(),
            denied,
            reasons,
        }
    }

    /// `3 tokens, all allowed` or `4 tokens: 2 allowed, 2 denied (expired 1, malformed_token 1)`.
    fn summary(&self) -> String {
        let tokens = plural(self.total, "token");
        if self.denied == 0 {
            return format!("{tokens}, all allowed");
        }
        let reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{reason} {n}"))
            .collect();
        format!(
            "{tokens}: {} allowed, {} denied ({})",
            self.total.saturating_sub(self.denied),
            self.denied,
            reasons.join(", ")
        )
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn threads_label(n: usize) -> String {
    plural(n, "thread")
}

/// The floor's keys, read apart from the engine (so that it stays an independent floor): with
/// jsonwebtoken, from the same JWK set (`--jwks`, else the JWK set files the policy names) and
/// the HMAC secrets the policy names.
struct FloorKeys {
    by_kid: HashMap<String, DecodingKey>,
    /// Keys without a `kid` (a token without one is checked with the only key, if there is one).
    unnamed: Vec<DecodingKey>,
}

impl FloorKeys {
    /// The keys, or why there are none to be had outside the engine.
    fn new(args: &EngineArgs, policy: &Policy) -> Result<Self, String> {
        let mut keys = FloorKeys {
            by_kid: HashMap::new(),
            unnamed: Vec::new(),
        };
        // The policy names its HMAC secrets itself, with or without `--jwks`.
        let secrets: Vec<_> = policy
            .issuers()
            .iter()
            .flat_map(|issuer| &issuer.hmac_secrets)
            .collect();
        match (&args.jwks, &args.jwks_url) {
            (Some(path), _) => keys.add_jwks(path),
            (None, Some(_)) => {
                return Err(
                    "keys come from `--jwks-url`: pass the same set as `--jwks FILE` to measure it"
                        .into(),
                );
            }
            (None, None) => {
                for path in policy.files() {
                    let is_secret = secrets
                        .iter()
                        .any(|s| matches!(&s.source, SecretSource::File(p) if p == path));
                    if !is_secret {
                        keys.add_jwks(path);
                    }
                }
            }
        }
        for secret in secrets {
            let bytes = match &secret.source {
                SecretSource::Env(name) => std::env::var_os(name).map(|v| v.into_encoded_bytes()),
                SecretSource::File(path) => std::fs::read(path).ok().map(|mut bytes| {
                    // As the engine reads it: one trailing line ending is not part of it.
                    if bytes.last() == Some(&b'\n') {
                        bytes.pop();
                        if bytes.last() == Some(&b'\r') {
                            bytes.pop();
                        }
                    }
                    bytes
                }),
                #[cfg(feature = "testing")]
                SecretSource::Bytes(bytes) => Some(bytes.to_vec()),
            };
            if let Some(bytes) = bytes {
                keys.add(secret.kid.clone(), DecodingKey::from_secret(&bytes));
            }
        }
        Ok(keys)
    }

    /// Adds every key of the JWK set at `path` that jsonwebtoken reads (the engine has read and
    /// checked the file already; a key it skipped cannot verify a token it allows).
    fn add_jwks(&mut self, path: &Path) {
        let Ok(text) = std::fs::read(path) else {
            return;
        };
        let Ok(set) = serde_json::from_slice::<serde_json::Value>(&text) else {
            return;
        };
        let jwks = set.get("keys").and_then(serde_json::Value::as_array);
        for jwk in jwks.into_iter().flatten() {
            let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(jwk.clone()) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(&jwk) {
                self.add(jwk.common.key_id.clone(), key);
            }
        }
    }

    fn add(&mut self, kid: Option<String>, key: DecodingKey) {
        match kid {
            Some(kid) => {
                self.by_kid.entry(kid).or_insert(key);
            }
            None => self.unnamed.push(key),
        }
    }

    /// The key a token with this `kid` is checked with.
    fn find(&self, kid: Option<&str>) -> Result<&DecodingKey, String> {
        match kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .or(match self.unnamed.as_slice() {
                    [only] if self.by_kid.is_empty() => Some(only),
                    _ => None,
                })
                .ok_or_else(|| {
                    format!(
                        "no key with `kid` `{kid}` in `--jwks` or a JWK set file the policy names"
                    )
                }),
            None => match (self.by_kid.values().next(), self.unnamed.as_slice()) {
                (Some(only), []) if self.by_kid.len() == 1 => Ok(only),
                (None, [only]) => Ok(only),
                _ => Err("no `kid`, and not exactly one key".into()),
            },
        }
    }
}

/// A token ready for the floor: split into signing input and signature, with its key.
struct FloorToken<'a> {
    input: &'a [u8],
    signature: &'a str,
    key: &'a DecodingKey,
    alg: jsonwebtoken::Algorithm,
}

/// The tokens the floor checks, and why not all, when not all.
struct Floor<'a> {
    tokens: Vec<FloorToken<'a>>,
    /// Why the first token left out is left out (`line N: why`).
    missing: Option<String>,
}

impl<'a> Floor<'a> {
    fn new(keys: &'a FloorKeys, tokens: &'a [Vec<u8>]) -> Self {
        let mut floor = Floor {
            tokens: Vec::with_capacity(tokens.len()),
            missing: None,
        };
        for (line, token) in tokens.iter().enumerate() {
            match FloorToken::new(keys, token) {
                Ok(ready) => floor.tokens.push(ready),
                Err(why) => {
                    floor
                        .missing
                        .get_or_insert_with(|| format!("line {}: {why}", line.saturating_add(1)));
                }
            }
        }
        floor
    }
}

/// The parts of a JOSE header the floor needs.
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

impl<'a> FloorToken<'a> {
    fn new(keys: &'a FloorKeys, token: &'a [u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(token).map_err(|_| "not UTF-8 text".to_owned())?;
        let (input, signature) = text
            .rsplit_once('.')
            .ok_or_else(|| "not a compact JWS".to_owned())?;
        let header = input
            .split_once('.')
            .and_then(|(header, _)| URL_SAFE_NO_PAD.decode(header).ok())
            .and_then(|bytes| serde_json::from_slice::<Header>(&bytes).ok())
            .ok_or_else(|| "no JOSE header with an `alg`".to_owned())?;
        let alg: jsonwebtoken::Algorithm = header
            .alg
            .parse()
            .map_err(|_| format!("jsonwebtoken does not verify `alg` `{}`", header.alg))?;
        let key = keys.find(header.kid.as_deref())?;
        // A key jsonwebtoken cannot use for this `alg` fails before any crypto: no floor.
        jsonwebtoken::crypto::verify(signature, input.as_bytes(), key, alg)
            .map_err(|e| format!("jsonwebtoken cannot check it: {e}"))?;
        Ok(FloorToken {
            input: input.as_bytes(),
            signature,
            key,
            alg,
        })
    }
}

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measure {
    /// `evaluate_at`, the cache off.
    Decision,
    /// `evaluate_at` with the cache on, every token already cached.
    DecisionCached,
    /// `evaluate_at`, then `Decision::to_json`.
    DecisionJson,
    /// `jsonwebtoken::crypto::verify` on the token already split, with its key built once.
    Floor,
}

impl Measure {
    fn label(self) -> &'static str {
        match self {
            Measure::Decision => "decision",
            Measure::DecisionCached => "decision, cache on",
            Measure::DecisionJson => "decision + to_json",
            Measure::Floor => "signature only (floor)",
        }
    }
}

/// One thread's pass over the tokens: its CPU time, and when it ran by the wall clock.
#[derive(Debug, Clone, Copy, Default)]
struct Pass {
    cpu: Duration,
    span: Option<(Instant, Instant)>,
}

/// One measure in one round, all threads together.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Summed over the threads.
    cpu: Duration,
    wall: Duration,
    /// Tokens decided (or checked), summed over the threads.
    items: usize,
}

/// The figures of one measure at one thread count: medians over rounds.
#[derive(Debug)]
struct Row {
    measure: Measure,
    tokens_per_sec: Option<f64>,
    /// Seconds.
    cpu_per_token: Option<f64>,
    vs_floor: Option<f64>,
}

/// Every measure at one thread count.
#[derive(Debug)]
struct Measured {
    threads: usize,
    rounds: usize,
    rows: Vec<Row>,
}

/// What the threads share.
struct Bench<'a> {
    engine: &'a PolicyEngine,
    /// The same, with the decision cache on and filled.
    cached: &'a PolicyEngine,
    tokens: &'a [Vec<u8>],
    floor: &'a [FloorToken<'a>],
    now: UnixTime,
}

impl Bench<'_> {
    fn measures(&self) -> Vec<Measure> {
        let mut measures = vec![
            Measure::Decision,
            Measure::DecisionCached,
            Measure::DecisionJson,
        ];
        if !self.floor.is_empty() {
            measures.push(Measure::Floor);
        }
        measures
    }

    fn len(&self, measure: Measure) -> usize {
        match measure {
            Measure::Floor => self.floor.len(),
            Measure::Decision | Measure::DecisionCached | Measure::DecisionJson => {
                self.tokens.len()
            }
        }
    }

    /// One pass of `measure` over every token, starting at `start` (threads start apart, so they
    /// do not all decide about the same token at the same time).
    fn pass(&self, measure: Measure, start: usize) {
        match measure {
            Measure::Decision => {
                for token in rotated(self.tokens, start) {
                    black_box(self.engine.evaluate_at(black_box(token), self.now));
                }
            }
            Measure::DecisionCached => {
                for token in rotated(self.tokens, start) {
                    black_box(self.cached.evaluate_at(black_box(token), self.now));
                }
            }
            Measure::DecisionJson => {
                for token in rotated(self.tokens, start) {
                    black_box(
                        self.engine
                            .evaluate_at(black_box(token), self.now)
                            .to_json(),
                    );
                }
            }
            Measure::Floor => {
                for t in rotated(self.floor, start) {
                    let ok =
                        jsonwebtoken::crypto::verify(black_box(t.signature), t.input, t.key, t.alg);
                    black_box(ok.ok());
                }
            }
        }
    }

    /// Rounds with `threads` threads until `budget` is spent (a warm-up round first, then at
    /// least [`MIN_ROUNDS`]).
    fn measure(&self, threads: usize, budget: Duration) -> Result<Measured, String> {
        let measures = self.measures();
        let m = measures.len();
        // The threads and this one meet before and after each pass; each thread reads its own
        // CPU clock and the wall clock around its pass. The pass's wall time runs from the first
        // thread's start to the last one's end: this thread, which only keeps time, may wake
        // late when every core is busy measuring, so it reads no clock itself.
        let barrier = Barrier::new(threads.saturating_add(1));
        let go_on = AtomicBool::new(true);
        let (rounds, passes) = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|i| {
                    let barrier = &barrier;
                    let go_on = &go_on;
                    let measures = &measures;
                    scope.spawn(move || {
                        let mut rounds: Vec<Vec<Pass>> = Vec::new();
                        loop {
                            let round = rounds.len();
                            let mut cpu = vec![Pass::default(); m];
                            for k in 0..m {
                                let which = (round + k) % m;
                                let measure = measures.get(which).copied();
                                barrier.wait();
                                let (c0, w0) = (thread_cpu(), Instant::now());
                                if let Some(measure) = measure {
                                    let start = i * self.len(measure) / threads;
                                    self.pass(measure, start);
                                }
                                let w1 = Instant::now();
                                let spent = match (c0, thread_cpu()) {
                                    (Some(c0), Some(c1)) => c1.saturating_sub(c0),
                                    _ => w1.saturating_duration_since(w0),
                                };
                                if let Some(slot) = cpu.get_mut(which) {
                                    *slot = Pass {
                                        cpu: spent,
                                        span: Some((w0, w1)),
                                    };
                                }
                                barrier.wait();
                            }
                            rounds.push(cpu);
                            barrier.wait();
                            if !go_on.load(Ordering::SeqCst) {
                                break rounds;
                            }
                        }
                    })
                })
                .collect();
            let started = Instant::now();
            let mut done = 0usize;
            loop {
                for _ in 0..m {
                    barrier.wait();
                    barrier.wait();
                }
                done += 1;
                let more = done <= MIN_ROUNDS || (done <= MAX_ROUNDS && started.elapsed() < budget);
                go_on.store(more, Ordering::SeqCst);
                barrier.wait();
                if !more {
                    break;
                }
            }
            let passes: Result<Vec<Vec<Vec<Pass>>>, String> = workers
                .into_iter()
                .map(|w| w.join().map_err(|_| "a measuring thread failed".to_owned()))
                .collect();
            (done, passes)
        });
        let passes = passes?;

        // Round 0 warmed up caches and branch predictors: left out.
        let mut samples: Vec<Vec<Sample>> = Vec::new();
        for round in 1..rounds {
            let mut row = Vec::with_capacity(m);
            for (j, &measure) in measures.iter().enumerate() {
                let of_threads: Vec<&Pass> = passes
                    .iter()
                    .filter_map(|t| t.get(round).and_then(|r| r.get(j)))
                    .collect();
                let spans = || of_threads.iter().filter_map(|p| p.span);
                let wall = match (spans().map(|(a, _)| a).min(), spans().map(|(_, b)| b).max()) {
                    (Some(first), Some(last)) => last.saturating_duration_since(first),
                    _ => Duration::ZERO,
                };
                row.push(Sample {
                    cpu: of_threads.iter().map(|p| p.cpu).sum(),
                    wall,
                    items: self.len(measure).saturating_mul(threads),
                });
            }
            samples.push(row);
        }
        let floor_index = measures.iter().position(|m| *m == Measure::Floor);
        let rows = measures
            .iter()
            .enumerate()
            .map(|(j, &measure)| {
                let of = |f: &dyn Fn(&[Sample]) -> Option<f64>| {
                    median(samples.iter().filter_map(|round| f(round)).collect())
                };
                Row {
                    measure,
                    tokens_per_sec: of(&|round| {
                        let s = round.get(j)?;
                        per(s.items as f64, s.wall.as_secs_f64())
                    }),
                    cpu_per_token: of(&|round| cpu_per_token(round.get(j)?)),
                    vs_floor: of(&|round| {
                        let own = cpu_per_token(round.get(j)?)?;
                        let floor = cpu_per_token(round.get(floor_index?)?)?;
                        per(own, floor)
                    }),
                }
            })
            .collect();
        Ok(Measured {
            threads,
            rounds: samples.len(),
            rows,
        })
    }
}

/// `items` from `start` to the end, then from the beginning to `start`.
fn rotated<T>(items: &[T], start: usize) -> impl Iterator<Item = &T> {
    let (head, tail) = items.split_at(start.min(items.len()));
    tail.iter().chain(head)
}

fn cpu_per_token(s: &Sample) -> Option<f64> {
    per(s.cpu.as_secs_f64(), s.items as f64)
}

/// `a / b`, when `b` is positive.
fn per(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values.get(mid).copied()
    } else {
        Some((values.get(mid.checked_sub(1)?)? + values.get(mid)?) / 2.0)
    }
}

/// The results as a Markdown table.
fn table(results: &[Measured]) -> String {
    let mut out = String::from(
        "| threads | measure | tokens/s | CPU per token | × floor |\n| ---: | --- | ---: | ---: | ---: |\n",
    );
    for result in results {
        for row in &result.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                result.threads,
                row.measure.label(),
                row.tokens_per_sec.map_or("n/a".into(), thousands),
                row.cpu_per_token.map_or("n/a".into(), micros),
                row.vs_floor.map_or("n/a".into(), |r| format!("{r:.2}")),
            ));
        }
    }
    out
}

/// `52310.4` as `52,310`.
fn thousands(value: f64) -> String {
    let digits = format!("{value:.0}");
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as microseconds with three significant digits (`19.1 µs`, `2.35 µs`, `312 µs`).
fn micros(seconds: f64) -> String {
    let us = seconds * 1e6;
    if us < 10.0 {
        format!("{us:.2} µs")
    } else if us < 100.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.0} µs")
    }
}

/// This thread's CPU time, where the platform has a clock for it.
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
fn thread_cpu() -> Option<Duration> {
    // `std` has no thread CPU clock; rustix is a safe binding to `clock_gettime`.
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(
        u64::try_from(t.tv_sec).ok()?,
        u32::try_from(t.tv_nsec).ok()?,
    ))
}

/// This thread's CPU time, where the platform has a clock for it.
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
fn thread_cpu() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_printed_for_pasting() {
        assert_eq!(thousands(52_310.4), "52,310");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(micros(19.14e-6), "19.1 µs");
        assert_eq!(micros(2.345e-6), "2.35 µs");
        assert_eq!(micros(312.4e-6), "312 µs");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn rotation_visits_every_item_once() {
        let items = [1, 2, 3, 4];
        assert_eq!(
            rotated(&items, 2).copied().collect::<Vec<_>>(),
            [3, 4, 1, 2]
        );
        assert_eq!(
            rotated(&items, 9).copied().collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
    }

    #[test]
    fn seconds_must_be_positive_and_finite() {
        assert_eq!(seconds("2.5"), Ok(Duration::from_millis(2500)));
        for bad in ["0", "-1", "NaN", "inf", "soon", ""] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }
}
