//! Tokenising and hashing for `features`: one pass over a text that counts structure (`Stats`)
//! and emits hashed word uni/bi-grams, position-tagged lead tokens and CJK character uni/bi-grams
//! to a `Sink`, lowercasing on the fly without building strings.
//!
//! Invariants: never panics on any UTF-8 input (all slicing is `str::get`); the runtime word hash
//! equals `fnv_str` of the lowercased word, so keyword tables can be built at compile time.

use super::features::{HASH_BITS, LEAD_TOKENS, SECTION_SEED, Section, Sink};

// ---- hashing ----------------------------------------------------------------------------

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

#[inline]
pub(crate) fn fnv_byte(h: u64, b: u8) -> u64 {
    (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
}

/// FNV-1a of a string, usable in constants. Runtime hashing of a lowercased word matches it.
pub(crate) const fn fnv_str(s: &str) -> u64 {
    let mut h = FNV_OFFSET;
    let mut rest = s.as_bytes();
    while let [b, tail @ ..] = rest {
        h = (h ^ *b as u64).wrapping_mul(FNV_PRIME);
        rest = tail;
    }
    h
}

#[allow(clippy::indexing_slicing)] // const evaluation: an out-of-bounds index fails the build
const fn fnv_all<const N: usize>(words: [&str; N]) -> [u64; N] {
    let mut out = [0u64; N];
    let mut i = 0;
    while i < N {
        out[i] = fnv_str(words[i]);
        i += 1;
    }
    out
}

/// Finaliser (splitmix64's) so FNV's weak low bits do not pick buckets.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline]
fn bucket(h: u64, section: Section) -> u32 {
    let seed = SECTION_SEED.get(section as usize).copied().unwrap_or(0);
    (mix(h ^ seed) >> (64 - HASH_BITS)) as u32
}

#[inline]
fn pair(a: u64, b: u64) -> u64 {
    a.rotate_left(23).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b
}

const NUM_HASH: [u64; 4] = fnv_all(["<num1>", "<num2>", "<num3>", "<num4+>"]);
const CODE_KW: [u64; 34] = fnv_all([
    "def",
    "fn",
    "return",
    "import",
    "include",
    "function",
    "const",
    "let",
    "var",
    "void",
    "public",
    "private",
    "static",
    "struct",
    "impl",
    "println",
    "printf",
    "async",
    "await",
    "lambda",
    "elif",
    "self",
    "null",
    "nullptr",
    "bool",
    "int",
    "std",
    "usize",
    "namespace",
    "typedef",
    "console",
    "select",
    "null",
    "args",
]);
const STEP_KW: [u64; 14] = fnv_all([
    "step",
    "steps",
    "first",
    "then",
    "finally",
    "next",
    "afterwards",
    "stage",
    "phase",
    "second",
    "third",
    "subsequently",
    "lastly",
    "walk",
]);
const CONSTRAINT_KW: [u64; 26] = fnv_all([
    "must",
    "should",
    "exactly",
    "least",
    "most",
    "only",
    "without",
    "ensure",
    "require",
    "requirements",
    "constraint",
    "constraints",
    "limit",
    "words",
    "sentences",
    "format",
    "avoid",
    "never",
    "always",
    "maximum",
    "minimum",
    "strictly",
    "within",
    "under",
    "no",
    "exceed",
]);
const WH_KW: [u64; 20] = fnv_all([
    "what", "why", "how", "who", "whom", "whose", "when", "where", "which", "is", "are", "can",
    "could", "does", "do", "did", "should", "would", "will", "was",
]);

/// One bit per value of a hash's top `KW_FILTER_BITS` bits, set for each word of the three
/// keyword tables, so that most words (about 80 % of the words of the training data) skip the
/// tables after one test.
const KW_FILTER_BITS: u32 = 10;
const KW_FILTER: [u64; 1 << (KW_FILTER_BITS - 6)] = kw_filter([&CODE_KW, &STEP_KW, &CONSTRAINT_KW]);

#[allow(clippy::indexing_slicing)] // const evaluation: an out-of-bounds index fails the build
const fn kw_filter<const N: usize>(tables: [&[u64]; N]) -> [u64; 1 << (KW_FILTER_BITS - 6)] {
    let mut bits = [0u64; 1 << (KW_FILTER_BITS - 6)];
    let mut t = 0;
    while t < N {
        let mut i = 0;
        while i < tables[t].len() {
            let top = (tables[t][i] >> (64 - KW_FILTER_BITS)) as usize;
            bits[top >> 6] |= 1 << (top & 63);
            i += 1;
        }
        t += 1;
    }
    bits
}

/// False when `h` is in none of the keyword tables (true may be a false positive).
#[inline]
fn maybe_keyword(h: u64) -> bool {
    let top = (h >> (64 - KW_FILTER_BITS)) as usize;
    KW_FILTER
        .get(top >> 6)
        .is_some_and(|bits| bits >> (top & 63) & 1 == 1)
}

// ---- scanning ---------------------------------------------------------------------------

/// Character class of one char for tokenising.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Word,
    Ideograph,
    Other,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF)
}

fn is_kana(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF)
}

fn classify_char(c: char) -> Class {
    if c.is_ascii() {
        if c.is_ascii_alphanumeric() || c == '_' {
            Class::Word
        } else {
            Class::Other
        }
    } else if is_cjk(c) || is_kana(c) {
        Class::Ideograph
    } else if c.is_alphanumeric() {
        Class::Word
    } else {
        Class::Other
    }
}

/// Counters gathered while scanning one text.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) chars: u32,
    pub(crate) letters: u32,
    pub(crate) ascii_letters: u32,
    pub(crate) upper: u32,
    pub(crate) digits: u32,
    pub(crate) cjk: u32,
    pub(crate) kana_hangul: u32,
    pub(crate) cyrillic: u32,
    pub(crate) arabic: u32,
    pub(crate) other_script: u32,
    pub(crate) words: u32,
    pub(crate) word_chars: u32,
    pub(crate) numbers: u32,
    pub(crate) newlines: u32,
    pub(crate) first_line_bytes: usize,
    pub(crate) blank_lines: u32,
    pub(crate) questions: u32,
    pub(crate) quotes: u32,
    pub(crate) pipes: u32,
    pub(crate) json_like: u32,
    pub(crate) code_punct: u32,
    pub(crate) math_symbols: u32,
    pub(crate) latex: u32,
    pub(crate) arithmetic: u32,
    pub(crate) code_kw: u32,
    pub(crate) code_idents: u32,
    pub(crate) steps: u32,
    pub(crate) constraints: u32,
    pub(crate) fences: u32,
    pub(crate) list_items: u32,
    pub(crate) mc_options: u32,
    pub(crate) stack_lines: u32,
    pub(crate) url_email: u32,
    pub(crate) wh_start: bool,
    pub(crate) last_visible: char,
}

/// Per-word state folded while its chars are read.
struct WordAcc {
    start: usize,
    hash: u64,
    all_digits: bool,
    ascii: bool,
    lower_seen: bool,
    camel: bool,
    underscore: bool,
    len: u32,
}

/// Scans `text`, updating `stats` and emitting hashed features to `sink` (if any).
pub(crate) struct Emitter<'s, 't, S: Sink<'t>> {
    sink: Option<&'s mut S>,
    uni: Section,
    bigrams: bool,
    lead: bool,
    prev_word: Option<u64>,
    prev_ideo: Option<u64>,
    tokens: u32,
    _t: std::marker::PhantomData<&'t str>,
}

impl<'s, 't, S: Sink<'t>> Emitter<'s, 't, S> {
    pub(crate) fn new(sink: Option<&'s mut S>, uni: Section, bigrams: bool, lead: bool) -> Self {
        Emitter {
            sink,
            uni,
            bigrams,
            lead,
            prev_word: None,
            prev_ideo: None,
            tokens: 0,
            _t: std::marker::PhantomData,
        }
    }

    fn lead_feature(&mut self, h: u64) {
        if self.lead && self.tokens < LEAD_TOKENS {
            let b = bucket(pair(h, u64::from(self.tokens) + 1), Section::LastLead);
            if let Some(s) = self.sink.as_deref_mut() {
                s.hashed(Section::LastLead, b, None);
            }
        }
        self.tokens += 1;
    }

    fn word(&mut self, h: u64, text: Option<&'t str>) {
        self.lead_feature(h);
        let uni = self.uni;
        let bigram = match (self.bigrams, self.prev_word) {
            (true, Some(p)) => Some(bucket(pair(p, h), Section::LastBigram)),
            _ => None,
        };
        if let Some(s) = self.sink.as_deref_mut() {
            s.hashed(uni, bucket(h, uni), if self.lead { text } else { None });
            if let Some(b) = bigram {
                s.hashed(Section::LastBigram, b, None);
            }
        }
        self.prev_word = Some(h);
        self.prev_ideo = None;
    }

    fn ideograph(&mut self, h: u64) {
        self.lead_feature(h);
        let section = if self.lead {
            Section::LastChar
        } else {
            self.uni
        };
        let bigram = self.prev_ideo.map(|p| bucket(pair(p, h), section));
        if let Some(s) = self.sink.as_deref_mut() {
            s.hashed(section, bucket(h, section), None);
            if let Some(b) = bigram {
                s.hashed(section, b, None);
            }
        }
        self.prev_ideo = Some(h);
        self.prev_word = None;
    }
}

fn finish_word<'t, S: Sink<'t>>(
    text: &'t str,
    end: usize,
    next: Option<char>,
    acc: &WordAcc,
    stats: &mut Stats,
    em: &mut Emitter<'_, 't, S>,
) {
    stats.words += 1;
    stats.word_chars += acc.len;
    let h = if acc.all_digits {
        stats.numbers += 1;
        let i = (acc.len as usize).clamp(1, 4) - 1;
        NUM_HASH.get(i).copied().unwrap_or(0)
    } else {
        acc.hash
    };
    if stats.words == 1 && WH_KW.contains(&h) {
        stats.wh_start = true;
    }
    if acc.ascii && (2..=13).contains(&acc.len) && maybe_keyword(h) {
        if CODE_KW.contains(&h) {
            stats.code_kw += 1;
        } else if STEP_KW.contains(&h) {
            stats.steps += 1;
        } else if CONSTRAINT_KW.contains(&h) {
            stats.constraints += 1;
        }
    }
    if acc.ascii && !acc.all_digits && (acc.camel || acc.underscore || next == Some('(')) {
        stats.code_idents += 1;
    }
    em.word(h, text.get(acc.start..end));
}

fn line_features(line: &str, stats: &mut Stats) {
    let t = line.trim_start();
    if t.is_empty() {
        stats.blank_lines += 1;
        return;
    }
    if t.starts_with("```") || t.starts_with("~~~") {
        stats.fences += 1;
    }
    let b = t.as_bytes();
    match b {
        [b'-' | b'*' | b'+', b' ', ..] => stats.list_items += 1,
        [b'A'..=b'H' | b'a'..=b'h', b'.' | b')', rest @ ..]
            if rest.first().is_none_or(|c| *c == b' ') =>
        {
            stats.mc_options += 1;
        }
        [b'0'..=b'9', ..] => {
            let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
            if matches!(b.get(digits), Some(b'.' | b')')) && digits <= 3 {
                stats.list_items += 1;
            }
        }
        _ => {}
    }
    if t.starts_with("• ") {
        stats.list_items += 1;
    }
    let stack = t.starts_with("Traceback (most recent call last)")
        || (t.starts_with("File \"") && t.contains(", line "))
        || (t.starts_with("at ") && t.ends_with(')') && t.contains(':'))
        || t.contains("panicked at")
        || t.starts_with("Exception in thread")
        || t.starts_with("stack backtrace:")
        || t.starts_with("goroutine ")
        || t.starts_with("error[E")
        || t.starts_with("Caused by:");
    if stack {
        stats.stack_lines += 1;
    }
}

/// One pass over `text`: counters into `stats`, hashed tokens into `em`.
pub(crate) fn scan<'t, S: Sink<'t>>(text: &'t str, stats: &mut Stats, em: &mut Emitter<'_, 't, S>) {
    let bytes = text.as_bytes();
    let mut word: Option<WordAcc> = None;
    let mut line_start = 0usize;
    let mut prev = ' ';
    let mut prev_visible = ' ';
    let mut i = 0usize;
    while let Some(c) = text.get(i..).and_then(|rest| rest.chars().next()) {
        let at = i;
        i += c.len_utf8();
        // The next char, for the two-char patterns below.
        let peek = || text.get(i..).and_then(|rest| rest.chars().next());
        let class = classify_char(c);
        if class == Class::Word {
            let acc = word.get_or_insert(WordAcc {
                start: at,
                hash: FNV_OFFSET,
                all_digits: true,
                ascii: true,
                lower_seen: false,
                camel: false,
                underscore: false,
                len: 0,
            });
            if c.is_ascii() {
                // Most text is runs of ASCII word chars: fold the whole run here, byte by byte.
                let mut end = at;
                while let Some(&b) = bytes.get(end)
                    && (b.is_ascii_alphanumeric() || b == b'_')
                {
                    acc.len += 1;
                    if b.is_ascii_digit() {
                        stats.digits += 1;
                    } else {
                        acc.all_digits = false;
                        if b == b'_' {
                            acc.underscore = acc.len > 1;
                        } else {
                            stats.letters += 1;
                            stats.ascii_letters += 1;
                            if b.is_ascii_uppercase() {
                                stats.upper += 1;
                                acc.camel |= acc.lower_seen;
                            } else {
                                acc.lower_seen = true;
                            }
                        }
                    }
                    acc.hash = fnv_byte(acc.hash, b.to_ascii_lowercase());
                    end += 1;
                }
                stats.chars += (end - at) as u32;
                let last = bytes.get(end - 1).map_or(c, |b| char::from(*b));
                prev_visible = last;
                prev = last;
                i = end;
                continue;
            }
            stats.chars += 1;
            acc.len += 1;
            acc.all_digits = false;
            acc.ascii = false;
            stats.letters += 1;
            match c as u32 {
                0x0400..=0x04FF => stats.cyrillic += 1,
                0x0600..=0x06FF | 0x0750..=0x077F => stats.arabic += 1,
                0xAC00..=0xD7AF | 0x1100..=0x11FF => stats.kana_hangul += 1,
                _ => stats.other_script += 1,
            }
            let mut buf = [0u8; 4];
            for lc in c.to_lowercase() {
                for b in lc.encode_utf8(&mut buf).bytes() {
                    acc.hash = fnv_byte(acc.hash, b);
                }
            }
        } else {
            stats.chars += 1;
            if let Some(acc) = word.take() {
                finish_word(text, at, Some(c), &acc, stats, em);
            }
            if class == Class::Ideograph {
                stats.letters += 1;
                if is_kana(c) {
                    stats.kana_hangul += 1;
                } else {
                    stats.cjk += 1;
                }
                let mut buf = [0u8; 4];
                let h = c.encode_utf8(&mut buf).bytes().fold(FNV_OFFSET, fnv_byte);
                em.ideograph(h);
            } else {
                match c {
                    '\n' => {
                        if stats.newlines == 0 {
                            stats.first_line_bytes = at;
                        }
                        stats.newlines += 1;
                        if let Some(line) = text.get(line_start..at) {
                            line_features(line, stats);
                        }
                        line_start = i;
                    }
                    '?' | '？' => stats.questions += 1,
                    '"' | '“' | '”' | '«' | '»' | '「' | '」' => stats.quotes += 1,
                    '|' => stats.pipes += 1,
                    '{' | '}' | ';' => stats.code_punct += 1,
                    '$' => stats.latex += 1,
                    '\\' if peek().is_some_and(|n| n.is_ascii_alphabetic()) => {
                        stats.latex += 1;
                    }
                    '^' | '=' | '<' | '>' | '+' | '*' | '/' | '×' | '÷' | '√' | 'π' | '∑' | '∫'
                    | '≠' | '≤' | '≥' | '±' | '∞' => stats.math_symbols += 1,
                    '@' => stats.url_email += 1,
                    _ => {}
                }
                match (prev, c) {
                    (':', ':') | ('-', '>') | ('=', '>') | ('=', '=') | ('!', '=') | ('&', '&') => {
                        stats.code_punct += 1;
                    }
                    ('"', ':') | ('{', '"') => stats.json_like += 1,
                    (':', '/') if peek() == Some('/') => {
                        stats.url_email += 1;
                    }
                    _ => {}
                }
                if matches!(c, '+' | '-' | '*' | '/' | '=' | '^' | '×' | '÷')
                    && (prev_visible.is_ascii_digit() || prev_visible == ')')
                {
                    stats.arithmetic += 1;
                }
            }
        }
        if !c.is_whitespace() {
            prev_visible = c;
        }
        prev = c;
    }
    if let Some(acc) = word.take() {
        finish_word(text, text.len(), None, &acc, stats, em);
    }
    if stats.newlines == 0 {
        stats.first_line_bytes = text.len();
    }
    if let Some(line) = text.get(line_start..) {
        line_features(line, stats);
    }
    stats.last_visible = prev_visible;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Unigram buckets, in order.
    struct Words(Vec<u32>);
    impl<'t> Sink<'t> for Words {
        fn hashed(&mut self, s: Section, b: u32, _: Option<&'t str>) {
            if s == Section::LastWord {
                self.0.push(b);
            }
        }
    }

    #[test]
    fn the_keyword_filter_passes_every_keyword_and_stops_most_words() {
        for h in CODE_KW.iter().chain(&STEP_KW).chain(&CONSTRAINT_KW) {
            assert!(maybe_keyword(*h));
        }
        let others = [
            "quarterly",
            "revenue",
            "growth",
            "region",
            "driven",
            "plan",
            "churn",
            "customers",
            "please",
            "summarize",
            "the",
            "key",
            "drivers",
            "three",
            "bullet",
            "points",
        ];
        let passed = others.iter().filter(|w| maybe_keyword(fnv_str(w))).count();
        assert!(
            passed <= 4,
            "{passed} of {} ordinary words passed",
            others.len()
        );
    }

    /// ASCII runs take a fast path; words that mix in other scripts, and the counters and
    /// two-char patterns around them, must come out as if every char took the general one.
    #[test]
    fn ascii_runs_and_other_chars_fold_into_the_same_words_and_counts() {
        let text = "Café naïveVar x2Y über_ALLES 42+7 a::b\nΣύνολο 3 'ok'";
        let mut stats = Stats::default();
        let mut words = Words(Vec::new());
        let mut em = Emitter::new(Some(&mut words), Section::LastWord, false, false);
        scan(text, &mut stats, &mut em);
        let expected: Vec<u32> = [
            fnv_str("café"),
            fnv_str("naïvevar"),
            fnv_str("x2y"),
            fnv_str("über_alles"),
            NUM_HASH[1],
            NUM_HASH[0],
            fnv_str("a"),
            fnv_str("b"),
            fnv_str("σύνολο"),
            NUM_HASH[0],
            fnv_str("ok"),
        ]
        .into_iter()
        .map(|h| bucket(h, Section::LastWord))
        .collect();
        assert_eq!(words.0, expected);
        assert_eq!(stats.chars, text.chars().count() as u32);
        assert_eq!(stats.words, 11);
        assert_eq!(stats.digits, 5);
        assert_eq!(stats.numbers, 3);
        assert_eq!(stats.upper, 8);
        assert_eq!(stats.letters, 33);
        assert_eq!(stats.ascii_letters, 24);
        assert_eq!(stats.other_script, 3 + 6); // é ï ü, and the Greek word
        assert_eq!(stats.code_idents, 1); // x2Y (camel); the non-ASCII ones do not count
        assert_eq!(stats.arithmetic, 1); // 42+7
        assert_eq!(stats.code_punct, 1); // a::b
        assert_eq!(stats.newlines, 1);
        assert_eq!(stats.first_line_bytes, text.find('\n').unwrap());
        assert_eq!(stats.last_visible, '\'');
    }
}
