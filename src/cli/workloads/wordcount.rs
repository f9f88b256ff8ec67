//! `wordcount`: map-reduce over text files.
//!
//! The root reads the files and cuts them into pieces of about
//! [`PIECE_BYTES`] at whitespace (pieces never span files, and the cut does
//! not depend on the rank count). Each item counts the words of one piece;
//! the root merges the counts. A word is a maximal run of alphanumeric
//! characters, lower-cased. Ties in the top list are broken alphabetically.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};

use super::{Answer, Input, Workload};

/// Target size of one piece of text.
pub const PIECE_BYTES: usize = 256 * 1024;

/// Word counts of `inputs`, reporting the `top` most frequent.
#[derive(Clone, Debug)]
pub struct WordCount {
    /// The text files.
    pub inputs: Vec<PathBuf>,
    /// How many of the most frequent words to report.
    pub top: usize,
}

/// The most text one input may hold: the root keeps all of it in memory
/// (and a device such as `/dev/zero` never ends).
pub const MAX_INPUT_BYTES: u64 = 4 << 30;

/// Reads one file as UTF-8 text, with errors that name the file and the
/// place. Read block by block, so a binary or endless input (`/dev/zero`,
/// a pipe) is refused at its first bad block or at [`MAX_INPUT_BYTES`].
pub fn read_text(path: &std::path::Path) -> anyhow::Result<String> {
    use std::io::Read;
    let context = || format!("cannot read input file {}", path.display());
    let mut file = std::fs::File::open(path).with_context(context)?;
    let mut bytes = Vec::new();
    loop {
        let before = bytes.len();
        let read = (&mut file)
            .take(1 << 20)
            .read_to_end(&mut bytes)
            .with_context(context)?;
        if let Some(at) = bytes[before..].iter().position(|&b| b == 0) {
            bail!(
                "input file {} looks binary (NUL byte at offset {}); wordcount needs UTF-8 text",
                path.display(),
                before + at
            );
        }
        if bytes.len() as u64 > MAX_INPUT_BYTES {
            bail!(
                "input file {} holds more than {} GiB of text; wordcount keeps its input in memory",
                path.display(),
                MAX_INPUT_BYTES >> 30
            );
        }
        if read == 0 {
            break;
        }
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "input file {} is not valid UTF-8 (invalid byte at offset {}); wordcount needs UTF-8 text",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Cuts `text` into pieces of about `target` bytes, each ending after ASCII whitespace.
pub fn split_pieces(text: &str, target: usize) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let mut end = (start + target).min(bytes.len());
        if end < bytes.len() {
            // Cut after the last whitespace in the window, else after the first one beyond it.
            end = match bytes[start..end].iter().rposition(u8::is_ascii_whitespace) {
                Some(i) => start + i + 1,
                None => bytes[end..]
                    .iter()
                    .position(u8::is_ascii_whitespace)
                    .map_or(bytes.len(), |i| end + i + 1),
            };
        }
        // ASCII whitespace never sits inside a multi-byte character: `end` is a char boundary.
        pieces.push(text[start..end].to_string());
        start = end;
    }
    pieces
}

/// Counts the words of one piece, sorted by word (so the encoding is canonical).
pub fn count_words(text: &str) -> Vec<(String, u64)> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
    let mut sorted: Vec<(String, u64)> = counts.into_iter().collect();
    sorted.sort_unstable();
    sorted
}

impl Workload for WordCount {
    type Item = String;
    type Output = Vec<(String, u64)>;
    type Summary = HashMap<String, u64>;

    fn name(&self) -> &'static str {
        "wordcount"
    }

    fn input(&self) -> anyhow::Result<Input<'_, String>> {
        let mut pieces = Vec::new();
        for path in &self.inputs {
            pieces.extend(split_pieces(&read_text(path)?, PIECE_BYTES));
        }
        Ok(Input::Items(pieces))
    }

    fn map(&self, piece: String) -> Vec<(String, u64)> {
        count_words(&piece)
    }

    fn absorb(&self, total: &mut HashMap<String, u64>, _index: usize, part: Vec<(String, u64)>) {
        for (word, n) in part {
            *total.entry(word).or_default() += n;
        }
    }

    fn answer(&self, total: &HashMap<String, u64>) -> Answer {
        let words: u64 = total.values().sum();
        let distinct = total.len();
        let mut ranked: Vec<(&str, u64)> = total.iter().map(|(w, &n)| (w.as_str(), n)).collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        ranked.truncate(self.top);
        let listing: Vec<String> = ranked.iter().map(|(w, n)| format!("{w}={n}")).collect();
        Answer {
            text: format!(
                "{words} words, {distinct} distinct; top: {}",
                listing.join(" ")
            ),
            value: serde_json::json!({ "words": words, "distinct": distinct, "top": ranked }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_rejoin_to_the_text_and_respect_chars() {
        let text = "héllo wörld  this is\na test ñ ".repeat(50);
        for target in [1, 7, 64, 10_000] {
            let pieces = split_pieces(&text, target);
            assert_eq!(pieces.concat(), text);
            assert!(pieces.iter().all(|p| !p.is_empty()));
        }
    }

    #[test]
    fn counts_and_ties() {
        let w = WordCount {
            inputs: vec![],
            top: 3,
        };
        let parts = vec![count_words("b a B, c!"), count_words("a c d")];
        let answer = w.answer(&super::super::fold(&w, parts));
        assert_eq!(answer.value["words"], 7);
        assert_eq!(answer.value["distinct"], 4);
        // a=2, b=2, c=2 tie: alphabetical.
        assert_eq!(
            answer.value["top"],
            serde_json::json!([["a", 2], ["b", 2], ["c", 2]])
        );
    }
}
