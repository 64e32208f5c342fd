//! The policy's regex dialect: the syntax of the `regex` crate, except that the Perl classes
//! (`\d`, `\w`, `\s` and their negations) and the word boundaries (`\b`, `\B`, `\<`, `\>`,
//! `\b{start}`, ...) are ASCII, and that a `${variable}` is inserted as a literal.
//!
//! A pattern is parsed once with `regex-syntax`; the Perl classes are rewritten in the parsed
//! form (the regex crate has no switch for them alone, and a textual rewrite would have to
//! re-implement the parser to know what is a class), and the compiled matcher is built from the
//! resulting HIR with `regex-automata`, the linear-time engine behind `regex`.

use regex_automata::meta;
use regex_syntax::ast::{self, Ast};
use regex_syntax::hir::{Hir, translate::Translator};

/// The largest compiled pattern (its automaton, in bytes): a policy cannot make matching slow or
/// memory-hungry.
pub(crate) const SIZE_LIMIT: usize = 1 << 20;

/// A pattern in both parsed forms.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The syntax tree, with spans into the pattern text (after the ASCII rewrite, which keeps
    /// them).
    pub(crate) ast: Ast,
    /// What the pattern matches: the form that is compiled.
    pub(crate) hir: Hir,
}

/// Parses `source` in the policy's dialect; the error says what is wrong, in one line.
pub(crate) fn parse(source: &str) -> Result<Parsed, String> {
    let mut ast = ast::parse::Parser::new()
        .parse(source)
        .map_err(|e| e.kind().to_string())?;
    ascii(&mut ast);
    let hir = Translator::new()
        .translate(source, &ast)
        .map_err(|e| e.kind().to_string())?;
    Ok(Parsed { ast, hir })
}

/// Compiles a parsed pattern into a matcher, within [`SIZE_LIMIT`].
pub(crate) fn compile(hir: &Hir) -> Result<meta::Regex, String> {
    meta::Builder::new()
        .configure(meta::Config::new().nfa_size_limit(Some(SIZE_LIMIT)))
        .build_from_hir(hir)
        .map_err(|e| match e.size_limit() {
            Some(_) => {
                "the compiled pattern is larger than 1 MiB: lower its repetition counts or narrow its classes"
                    .to_owned()
            }
            None => e.to_string(),
        })
}

/// Appends `value` to a pattern as a literal: every regex metacharacter is escaped, and so is
/// whitespace (which the `x` flag would otherwise ignore).
pub(crate) fn push_literal(pattern: &mut String, value: &str) {
    for c in value.chars() {
        if regex_syntax::is_meta_character(c) {
            pattern.push('\\');
            pattern.push(c);
        } else if c.is_whitespace() {
            pattern.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
        } else {
            pattern.push(c);
        }
    }
}

/// Rewrites the Perl classes to their ASCII forms (`\d` to `[[:digit:]]`, `\W` to
/// `[[:^word:]]`) and puts each word boundary in a group without the `u` flag (`(?-u:\b)`).
/// The recursion is bounded by the parser's nesting limit.
fn ascii(ast: &mut Ast) {
    match ast {
        Ast::ClassPerl(perl) => {
            let span = perl.span;
            *ast = Ast::class_bracketed(ast::ClassBracketed {
                span,
                negated: false,
                kind: ast::ClassSet::Item(ast::ClassSetItem::Ascii(ascii_class(perl))),
            });
        }
        Ast::ClassBracketed(class) => ascii_set(&mut class.kind),
        Ast::Assertion(assertion) if is_word_boundary(&assertion.kind) => {
            let span = assertion.span;
            let boundary = std::mem::replace(ast, Ast::empty(span));
            let item = |kind| ast::FlagsItem { span, kind };
            *ast = Ast::group(ast::Group {
                span,
                kind: ast::GroupKind::NonCapturing(ast::Flags {
                    span,
                    items: vec![
                        item(ast::FlagsItemKind::Negation),
                        item(ast::FlagsItemKind::Flag(ast::Flag::Unicode)),
                    ],
                }),
                ast: Box::new(boundary),
            });
        }
        Ast::Repetition(repetition) => ascii(&mut repetition.ast),
        Ast::Group(group) => ascii(&mut group.ast),
        Ast::Alternation(alternation) => alternation.asts.iter_mut().for_each(ascii),
        Ast::Concat(concat) => concat.asts.iter_mut().for_each(ascii),
        Ast::Empty(_)
        | Ast::Flags(_)
        | Ast::Literal(_)
        | Ast::Dot(_)
        | Ast::Assertion(_)
        | Ast::ClassUnicode(_) => {}
    }
}

fn ascii_set(set: &mut ast::ClassSet) {
    match set {
        ast::ClassSet::Item(item) => ascii_item(item),
        ast::ClassSet::BinaryOp(op) => {
            ascii_set(&mut op.lhs);
            ascii_set(&mut op.rhs);
        }
    }
}

fn ascii_item(item: &mut ast::ClassSetItem) {
    match item {
        ast::ClassSetItem::Perl(perl) => *item = ast::ClassSetItem::Ascii(ascii_class(perl)),
        ast::ClassSetItem::Bracketed(class) => ascii_set(&mut class.kind),
        ast::ClassSetItem::Union(union) => union.items.iter_mut().for_each(ascii_item),
        ast::ClassSetItem::Empty(_)
        | ast::ClassSetItem::Literal(_)
        | ast::ClassSetItem::Range(_)
        | ast::ClassSetItem::Ascii(_)
        | ast::ClassSetItem::Unicode(_) => {}
    }
}

/// The ASCII class a Perl class means without the `u` flag: `\s` is `[\t\n\v\f\r ]`.
fn ascii_class(perl: &ast::ClassPerl) -> ast::ClassAscii {
    let kind = match perl.kind {
        ast::ClassPerlKind::Digit => ast::ClassAsciiKind::Digit,
        ast::ClassPerlKind::Space => ast::ClassAsciiKind::Space,
        ast::ClassPerlKind::Word => ast::ClassAsciiKind::Word,
    };
    ast::ClassAscii {
        span: perl.span,
        kind,
        negated: perl.negated,
    }
}

fn is_word_boundary(kind: &ast::AssertionKind) -> bool {
    use ast::AssertionKind as K;
    match kind {
        K::WordBoundary
        | K::NotWordBoundary
        | K::WordBoundaryStart
        | K::WordBoundaryEnd
        | K::WordBoundaryStartAngle
        | K::WordBoundaryEndAngle
        | K::WordBoundaryStartHalf
        | K::WordBoundaryEndHalf => true,
        K::StartLine | K::EndLine | K::StartText | K::EndText => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(source: &str) -> meta::Regex {
        let parsed = parse(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        compile(&parsed.hir).unwrap_or_else(|e| panic!("{source}: {e}"))
    }

    #[test]
    fn perl_classes_and_word_boundaries_are_ascii() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            (r"^\d+$", &["0123456789"], &["１", "١", "߀", "²"]),
            (r"^\D$", &["a", "١", "\n"], &["7"]),
            (r"^\w+$", &["aZ_9"], &["é", "ǅ", "١", "-"]),
            (r"^\W$", &["é", "-"], &["a", "_"]),
            (
                r"^\s+$",
                &[" \t\n\x0B\x0C\r"],
                &["\u{a0}", "\u{2003}", "\u{85}"],
            ),
            (r"^\S$", &["\u{a0}", "a"], &[" "]),
            (r"^[\d\s]+$", &["1 2"], &["1\u{a0}2", "١"]),
            (r"^[^\d]$", &["١"], &["1"]),
            (r"^[\w&&[^_]]+$", &["ab"], &["a_", "é"]),
            (r"^[[\d]a]+$", &["1a"], &["١"]),
            (r"^x\b", &["x-", "xé", "x"], &["xy", "x_"]),
            (r"^x\B", &["xy"], &["xé", "x"]),
            (r"\<é", &[], &["-é", "é"]),
            (r"^x\>", &["xé"], &["xa"]),
            (r"^x\b{end}", &["xé"], &["xa"]),
            (r"\b{start}x$", &["éx"], &["ax"]),
            (r"^(?i)\d$", &["1"], &["１"]),
            (r"^(?-u:\d)$", &["1"], &["١"]),
            // Unicode written as such stays Unicode.
            (r"^\p{Nd}+$", &["١1"], &["a"]),
            (r"^[[:digit:]]$", &["1"], &["١"]),
            (r"^é.$", &["éé"], &["e"]),
            (r"^(?i)é$", &["É"], &[]),
            (r"^(?i)k$", &["K", "\u{212A}"], &[]),
        ];
        for (source, yes, no) in cases {
            let re = matcher(source);
            for value in *yes {
                assert!(re.is_match(*value), "{source} must match {value:?}");
            }
            for value in *no {
                assert!(!re.is_match(*value), "{source} must not match {value:?}");
            }
        }
    }

    #[test]
    fn what_cannot_be_compiled_says_why() {
        assert_eq!(parse("(").unwrap_err(), "unclosed group");
        assert_eq!(parse(r"\q").unwrap_err(), "unrecognized escape sequence");
        // ASCII `\D` without the `u` flag matches any byte but a digit, which is not UTF-8.
        assert_eq!(
            parse(r"(?-u:\D)").unwrap_err(),
            "pattern can match invalid UTF-8"
        );
        let big = parse(r"\pL{1000}").unwrap();
        assert!(compile(&big.hir).unwrap_err().contains("larger than 1 MiB"));
        assert!(compile(&parse("^[a-z]{100}$").unwrap().hir).is_ok());
    }

    #[test]
    fn a_literal_is_escaped_for_every_mode() {
        let value = "a.b*c (d|e) #f\tg+[h]{2}^$\\ é";
        let mut source = "(?x)^".to_owned();
        push_literal(&mut source, value);
        source.push('$');
        let re = matcher(&source);
        assert!(re.is_match(value));
        assert!(!re.is_match("aXb*c (d|e) #f\tg+[h]{2}^$\\ é"));
        let mut class = "^[".to_owned();
        push_literal(&mut class, "-^]a");
        class.push_str("]+$");
        let re = matcher(&class);
        assert!(re.is_match("^-]a"));
        assert!(!re.is_match("b"));
    }
}
