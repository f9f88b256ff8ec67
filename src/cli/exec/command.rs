//! The command of `hpcmap exec` for one item: GNU parallel's replacement
//! strings in the arguments, no shell unless asked.
//!
//! | string | becomes |
//! |---|---|
//! | `{}` | the item |
//! | `{.}` | the item without its extension (`a/b.c` -> `a/b`) |
//! | `{/}` | its basename (`a/b.c` -> `b.c`) |
//! | `{//}` | its directory (`a/b.c` -> `a`; `.` when it has none) |
//! | `{/.}` | its basename without extension (`b`) |
//! | `{#}` | the item's sequence number, from 1 |
//! | `{%}` | the job slot: rank x threads + thread + 1 |
//!
//! Without any replacement string the item is appended as the last
//! argument. Arguments go to `execve` as they are; with `--shell` the
//! command is one `sh -c` script, and every replaced value is quoted for
//! the shell, so an item with spaces, quotes, `$` or `;` stays one word.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// What a replacement string stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Item,
    NoExtension,
    Basename,
    Dirname,
    BasenameNoExtension,
    Sequence,
    Slot,
}

const TOKENS: [(&str, Token); 7] = [
    ("{}", Token::Item),
    ("{.}", Token::NoExtension),
    ("{//}", Token::Dirname),
    ("{/.}", Token::BasenameNoExtension),
    ("{/}", Token::Basename),
    ("{#}", Token::Sequence),
    ("{%}", Token::Slot),
];

/// One piece of a template argument.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Replace(Token),
}

/// A command with replacement strings, parsed once.
#[derive(Clone, Debug)]
pub struct Template {
    args: Vec<Vec<Piece>>,
    shell: bool,
}

/// Where one item runs, for `{#}` and `{%}`.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    /// 1-based sequence number of the item.
    pub seq: usize,
    /// 1-based job slot.
    pub slot: usize,
}

impl Template {
    /// Parses `args` (the command after `--`); with `shell`, they form one
    /// `sh -c` script, and no arguments means each item is the script.
    pub fn new(args: &[OsString], shell: bool) -> Template {
        let mut parsed: Vec<Vec<Piece>> =
            args.iter().map(|a| parse(&a.clone().into_vec())).collect();
        let replaces = parsed
            .iter()
            .flatten()
            .any(|p| matches!(p, Piece::Replace(_)));
        let scripts = shell && parsed.is_empty();
        if !(replaces || scripts) {
            parsed.push(vec![Piece::Replace(Token::Item)]);
        }
        Template {
            args: parsed,
            shell,
        }
    }

    /// Whether commands run through `sh -c`.
    pub fn is_shell(&self) -> bool {
        self.shell
    }

    /// Whether each item is a shell script of its own (`--shell`, no command).
    pub fn items_are_scripts(&self) -> bool {
        self.shell && self.args.is_empty()
    }

    /// The argv for `item` at `place`.
    pub fn argv(&self, item: &[u8], place: Place) -> Vec<OsString> {
        if self.items_are_scripts() {
            return ["sh", "-c"]
                .map(OsString::from)
                .into_iter()
                .chain([OsString::from_vec(item.to_vec())])
                .collect();
        }
        if self.shell {
            let script: Vec<Vec<u8>> = self
                .args
                .iter()
                .map(|a| expand(a, item, place, true))
                .collect();
            return ["sh", "-c"]
                .map(OsString::from)
                .into_iter()
                .chain([OsString::from_vec(script.join(&b' '))])
                .collect();
        }
        self.args
            .iter()
            .map(|a| OsString::from_vec(expand(a, item, place, false)))
            .collect()
    }
}

/// Splits an argument into text and replacement strings.
fn parse(arg: &[u8]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = Vec::new();
    let mut at = 0;
    'scan: while at < arg.len() {
        if arg[at] == b'{' {
            for (name, token) in TOKENS {
                if arg[at..].starts_with(name.as_bytes()) {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Replace(token));
                    at += name.len();
                    continue 'scan;
                }
            }
        }
        text.push(arg[at]);
        at += 1;
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

fn expand(pieces: &[Piece], item: &[u8], place: Place, quote: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.extend_from_slice(t),
            Piece::Replace(token) => {
                let value = value(*token, item, place);
                if quote {
                    out.extend_from_slice(&shell_quote(&value));
                } else {
                    out.extend_from_slice(&value);
                }
            }
        }
    }
    out
}

fn value(token: Token, item: &[u8], place: Place) -> Vec<u8> {
    let base_at = item.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let base = &item[base_at..];
    let no_ext = |path: &[u8], from: usize| -> Vec<u8> {
        // An extension is a dot after the last slash, not leading the name.
        match path[from..].iter().rposition(|&b| b == b'.') {
            Some(dot) if dot > 0 => path[..from + dot].to_vec(),
            _ => path.to_vec(),
        }
    };
    match token {
        Token::Item => item.to_vec(),
        Token::NoExtension => no_ext(item, base_at),
        Token::Basename => base.to_vec(),
        Token::BasenameNoExtension => no_ext(base, 0),
        Token::Dirname => match base_at {
            0 => b".".to_vec(),
            1 => b"/".to_vec(),
            n => item[..n - 1].to_vec(),
        },
        Token::Sequence => place.seq.to_string().into_bytes(),
        Token::Slot => place.slot.to_string().into_bytes(),
    }
}

/// `value` as one word for `sh`: single-quoted, with `'` as `'\''`.
pub fn shell_quote(value: &[u8]) -> Vec<u8> {
    let safe = !value.is_empty()
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(b));
    if safe {
        return value.to_vec();
    }
    let mut out = vec![b'\''];
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// An argv as one line a shell would read back the same (for logs).
pub fn display(argv: &[OsString]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| String::from_utf8_lossy(&shell_quote(a.as_encoded_bytes())).into_owned())
        .collect();
    words.join(" ")
}

/// `shown` cut to a length that reads in a message (an argument may be
/// megabytes long), saying how much was left out.
pub fn abbreviated(shown: &str) -> String {
    const KEEP: usize = 200;
    match shown.char_indices().nth(KEEP) {
        Some((at, _)) => format!("{}... ({} bytes in all)", &shown[..at], shown.len()),
        None => shown.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn run(template: &[&str], shell: bool, item: &str) -> Vec<String> {
        Template::new(&os(template), shell)
            .argv(item.as_bytes(), Place { seq: 7, slot: 3 })
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn replacement_strings_follow_gnu_parallel() {
        let item = "dir/sub/file.tar.gz";
        let got = run(
            &["x", "{}", "{.}", "{/}", "{//}", "{/.}", "{#}-{%}"],
            false,
            item,
        );
        assert_eq!(
            got,
            [
                "x",
                item,
                "dir/sub/file.tar",
                "file.tar.gz",
                "dir/sub",
                "file.tar",
                "7-3"
            ]
        );
        assert_eq!(
            run(&["e", "{//}", "{.}"], false, "plain"),
            ["e", ".", "plain"]
        );
        assert_eq!(
            run(&["e", "{.}", "{/.}"], false, "a.d/.hidden"),
            ["e", "a.d/.hidden", ".hidden"]
        );
        assert_eq!(run(&["e", "{//}"], false, "/top"), ["e", "/"]);
        assert_eq!(
            run(&["gzip", "-9"], false, "a b"),
            ["gzip", "-9", "a b"],
            "appended"
        );
        assert_eq!(
            run(&["e", "{unknown}"], false, "i"),
            ["e", "{unknown}", "i"]
        );
    }

    #[test]
    fn shell_mode_quotes_every_value() {
        let nasty = "it's $HOME; rm -rf \"x\" `y` ü";
        // With --shell the command is shell code: the format needs its quotes.
        let argv = run(&["printf", "'%s\\n'", "{}"], true, nasty);
        assert_eq!(&argv[..2], ["sh", "-c"]);
        let out = std::process::Command::new("sh")
            .args(&argv[1..])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{nasty}\n"));
        assert_eq!(
            run(&[], true, "echo hi"),
            ["sh", "-c", "echo hi"],
            "the item is the script"
        );
    }

    #[test]
    fn display_quotes_what_needs_it() {
        assert_eq!(
            display(&os(&["gzip", "-9", "a b", "it's"])),
            "gzip -9 'a b' 'it'\\''s'"
        );
    }
}
