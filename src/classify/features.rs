//! Feature extraction: turns an `Input` into dense structural features plus a stream of hashed
//! n-gram buckets, in one pass and without allocating.
//!
//! Owns the feature layout: the dense feature list (`DENSE_NAMES`), the hash function and its
//! seeds, the sections and their scales, and the work caps on long inputs. The same code feeds
//! training (which collects the stream) and classification (which folds it into logits).
//!
//! Invariants:
//! - Deterministic and pure; never panics on any UTF-8 input.
//! - Bounded work: the last user turn is read up to `LAST_HEAD + LAST_TAIL` bytes, the system
//!   prompt up to `SYSTEM_BYTES`, and at most `EARLIER_TURNS` earlier turns up to
//!   `EARLIER_BYTES` each. Whole-conversation lengths come from `str::len`, which is O(1).
//! - Anything changed here changes what the weights mean: bump `model::FORMAT_VERSION`.

use super::input::{Input, ResponseFormat, Role};
use super::scan::{Emitter, Stats, scan};
#[cfg(test)]
use super::scan::{FNV_OFFSET, fnv_byte, fnv_str};

/// log2 of the number of hashed buckets.
pub(crate) const HASH_BITS: u32 = 16;
/// Number of hashed buckets.
pub(crate) const N_HASHED: usize = 1 << HASH_BITS;
/// Model outputs per feature: 11 task logits + 1 difficulty logit.
pub(crate) const N_OUT: usize = 12;
/// Column of the difficulty logit.
pub(crate) const DIFF_COL: usize = 11;

const LAST_HEAD: usize = 8 * 1024;
const LAST_TAIL: usize = 2 * 1024;
const SYSTEM_BYTES: usize = 1536;
const EARLIER_TURNS: usize = 6;
const EARLIER_BYTES: usize = 512;
/// Tokens at the start of the last user turn that also get a position-tagged feature.
pub(crate) const LEAD_TOKENS: u32 = 4;

/// Where a hashed feature came from; each section is scaled by `scale(section, count)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    LastWord = 0,
    LastBigram = 1,
    LastLead = 2,
    LastChar = 3,
    System = 4,
    Earlier = 5,
    /// Words of the first and the last sentence of the last user turn: where the instruction
    /// usually is, before or after pasted material.
    Instr = 6,
}

pub(crate) const N_SECTIONS: usize = 7;
const SECTION_WEIGHT: [f32; N_SECTIONS] = [1.0, 0.7, 1.5, 0.8, 0.5, 0.3, INSTR_WEIGHT];
const INSTR_WEIGHT: f32 = 1.0;
/// At most this many bytes of the first and of the last sentence feed `Section::Instr`.
const INSTR_BYTES: usize = 240;
pub(crate) const SECTION_SEED: [u64; N_SECTIONS] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x27d4_eb2f_1656_67c5,
    0x85eb_ca77_c2b2_ae63,
    0xff51_afd7_ed55_8ccd,
    0xc4ce_b9fe_1a85_ec53,
];

/// Value of every hashed feature in a section that received `count` features: the section's
/// weight over sqrt(count), so long texts do not drown short ones. The body of the last turn
/// (words, bigrams, CJK characters) is damped more, count^0.65: in a long turn most of it is
/// pasted material, and the instruction (see `Section::Instr`) should still be heard.
pub(crate) fn scale(section: usize, count: u32) -> f32 {
    let w = SECTION_WEIGHT.get(section).copied().unwrap_or(0.0);
    let n = count.max(1) as f32;
    let body = section == Section::LastWord as usize
        || section == Section::LastBigram as usize
        || section == Section::LastChar as usize;
    if body {
        w / n.powf(BODY_POW)
    } else {
        w / n.sqrt()
    }
}
const BODY_POW: f32 = 0.65;

/// Receives hashed features. `word` is the original text of a last-turn unigram (for signals).
pub(crate) trait Sink<'t> {
    fn hashed(&mut self, section: Section, bucket: u32, word: Option<&'t str>);
}

macro_rules! dense_features {
    ($($name:ident = $label:expr),* $(,)?) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms, clippy::enum_variant_names, dead_code)]
        #[derive(Clone, Copy)]
        #[repr(usize)]
        pub(crate) enum D { $($name),* }
        /// Human-readable names of the dense features, for signals.
        pub(crate) const DENSE_NAMES: &[&str] = &[$($label),*];
    };
}

dense_features! {
    BIAS = "bias",
    LAST_LEN = "prompt length",
    TOTAL_LEN = "conversation length",
    TURNS = "turn count",
    MULTI_TURN = "multi-turn conversation",
    ASSISTANT_TURNS = "assistant turns",
    TOOL_TURNS = "tool results in conversation",
    SYSTEM = "system prompt",
    SYSTEM_LEN = "long system prompt",
    WORDS = "word count",
    LINES = "line count",
    FIRST_LINE_LEN = "first line length",
    REST_LEN = "text after the first line",
    CODE_FENCE = "code fence",
    CODE_FENCES = "several code fences",
    CODE_KEYWORDS = "code keywords",
    CODE_IDENTS = "code identifiers",
    CODE_PUNCT = "code punctuation",
    STACK_TRACE = "stack trace",
    MATH_LATEX = "maths notation",
    MATH_SYMBOLS = "maths symbols",
    ARITHMETIC = "arithmetic",
    DIGIT_SHARE = "digits",
    NUMBERS = "numbers",
    MULTI_STEP = "multi-step wording",
    CONSTRAINTS = "constraint wording",
    ENDS_WITH_QUESTION = "question form",
    QUESTION_MARKS = "question marks",
    WH_START = "starts with a question word",
    LIST_ITEMS = "list items",
    MC_OPTIONS = "multiple-choice options",
    HAS_TOOLS = "tools offered",
    RF_JSON_OBJECT = "json_object response",
    RF_JSON_SCHEMA = "json_schema response",
    MAX_TOKENS_SET = "max tokens set",
    MAX_TOKENS = "large max tokens",
    CJK_SHARE = "CJK script",
    KANA_HANGUL_SHARE = "Japanese/Korean script",
    CYRILLIC_SHARE = "Cyrillic script",
    ARABIC_SHARE = "Arabic script",
    OTHER_SCRIPT_SHARE = "other non-ASCII letters",
    MIXED_SCRIPT = "mixed scripts",
    UPPER_SHARE = "upper case",
    PARAGRAPHS = "paragraphs",
    URL_EMAIL = "URL or e-mail",
    QUOTES = "quotations",
    EARLIER_LEN = "earlier turns length",
    LAST_SHARE = "last turn share",
    JSON_LIKE = "JSON in prompt",
    TABLE = "table",
    AVG_WORD_LEN = "word length",
    SHORT = "short prompt",
    EARLIER_CODE = "code earlier in conversation",
    EARLIER_MATH = "maths earlier in conversation",
}

pub(crate) const N_DENSE: usize = DENSE_NAMES.len();

/// Dense features the task model does not use: lengths and script shares identify a data
/// source more than a task (long Arena prompts, Chinese BELLE prompts), so letting the task
/// model use them teaches it source artefacts. The difficulty model uses them all.
pub(crate) const NOT_FOR_TASK: [D; 15] = [
    D::LAST_LEN,
    D::TOTAL_LEN,
    D::WORDS,
    D::LINES,
    D::FIRST_LINE_LEN,
    D::REST_LEN,
    D::EARLIER_LEN,
    D::SYSTEM_LEN,
    D::AVG_WORD_LEN,
    D::PARAGRAPHS,
    D::CJK_SHARE,
    D::KANA_HANGUL_SHARE,
    D::CYRILLIC_SHARE,
    D::ARABIC_SHARE,
    D::OTHER_SCRIPT_SHARE,
];

/// Whether dense feature `i` feeds the task model.
pub(crate) fn is_task_feature(i: usize) -> bool {
    !NOT_FOR_TASK.iter().any(|d| *d as usize == i)
}
/// Difficulty-only features: task probability, and task probability times a few structures.
pub(crate) const CROSS_WITH: [D; 4] = [D::BIAS, D::LAST_LEN, D::CONSTRAINTS, D::MULTI_STEP];
/// Task-probability cross features (the first ones); the topic-gap ones follow.
pub(crate) const N_TASK_CROSS: usize = 11 * CROSS_WITH.len();
/// The topic gap (`topic::gap_feature`) alone, times each task probability and times the
/// multiple-choice feature: the difficulty model learns where the topic head is worth trusting.
pub(crate) const N_GAP_CROSS: usize = 1 + 11 + 1;
pub(crate) const N_CROSS: usize = N_TASK_CROSS + N_GAP_CROSS;

/// Dense features plus the raw counts that signal names quote.
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    pub values: [f32; N_DENSE],
    pub turns: usize,
}

impl Dense {
    fn set(&mut self, d: D, v: f32) {
        if let Some(slot) = self.values.get_mut(d as usize) {
            *slot = if v.is_finite() { v } else { 0.0 };
        }
    }
    pub(crate) fn get(&self, d: D) -> f32 {
        self.values.get(d as usize).copied().unwrap_or(0.0)
    }
}

/// The difficulty model's cross features from the task probabilities and the topic gap
/// (`topic::gap_feature`).
pub(crate) fn cross_features(probs: &[f32; 11], gap: f32, dense: &Dense) -> [f32; N_CROSS] {
    let mut out = [0.0; N_CROSS];
    let (task_part, gap_part) = out.split_at_mut(N_TASK_CROSS);
    for (slot, (k, c)) in task_part
        .iter_mut()
        .zip((0..CROSS_WITH.len()).flat_map(|k| (0..11).map(move |c| (k, c))))
    {
        let d = CROSS_WITH.get(k).map_or(0.0, |d| dense.get(*d));
        *slot = probs.get(c).copied().unwrap_or(0.0) * d;
    }
    let gap = if gap.is_finite() { gap } else { 0.0 };
    let scales = std::iter::once(1.0)
        .chain(probs.iter().copied())
        .chain(std::iter::once(dense.get(D::MC_OPTIONS)));
    for (slot, k) in gap_part.iter_mut().zip(scales) {
        *slot = gap * k;
    }
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// The longest suffix of `s` of at most `max` bytes that starts on a char boundary.
fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s.get(start..).unwrap_or("")
}

fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '?' | '!' | '\n' | '。' | '？' | '！')
}

/// The first sentence of `s` (up to the first sentence end or newline), at most `INSTR_BYTES`.
fn first_sentence(s: &str) -> &str {
    let s = s.trim_start();
    let end = s
        .char_indices()
        .find(|(i, c)| *i > 0 && is_sentence_end(*c))
        .map_or(s.len(), |(i, c)| i + c.len_utf8());
    head(s.get(..end).unwrap_or(s), INSTR_BYTES)
}

/// The last sentence of `s` (after the last sentence end or newline that is not the final
/// character), at most `INSTR_BYTES`.
fn last_sentence(s: &str) -> &str {
    let s = s.trim_end();
    let body = s.trim_end_matches(is_sentence_end);
    let start = body
        .char_indices()
        .rev()
        .find(|(_, c)| is_sentence_end(*c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    tail(s.get(start..).unwrap_or(s).trim_start(), INSTR_BYTES)
}

fn log_scaled(x: f32, div: f32) -> f32 {
    x.max(0.0).ln_1p() / div
}

/// Extracts the dense features and streams the hashed ones into `sink`.
pub(crate) fn extract<'t, S: Sink<'t>>(input: &'t Input<'_>, sink: &mut S) -> Dense {
    let last_idx = input
        .last_user_index()
        .or_else(|| input.turns.len().checked_sub(1));
    let last: &'t str = last_idx
        .and_then(|i| input.turns.get(i))
        .map_or("", |t| t.text.as_ref());

    // Last user turn: full features on the head (and tail, for very long prompts).
    let mut st = Stats::default();
    let mut em = Emitter::new(Some(&mut *sink), Section::LastWord, true, true);
    let h = head(last, LAST_HEAD);
    scan(h, &mut st, &mut em);
    if last.len() > h.len() {
        let t = tail(last.get(h.len()..).unwrap_or(""), LAST_TAIL);
        let mut em = Emitter::new(Some(&mut *sink), Section::LastWord, true, false);
        scan(t, &mut st, &mut em);
    }
    // The instruction: words of the first and the last sentence again, in their own section
    // (the same sentence twice when the turn has only one).
    for part in [first_sentence(last), last_sentence(last)] {
        let mut em = Emitter::new(Some(&mut *sink), Section::Instr, false, false);
        scan(part, &mut Stats::default(), &mut em);
    }

    // System prompt(s) and earlier turns: unigrams only, capped.
    let mut sys_bytes = 0usize;
    let mut system_len = 0usize;
    let mut earlier = Stats::default();
    let mut earlier_len = 0usize;
    let mut earlier_seen = 0usize;
    let (mut turns, mut assistant_turns, mut tool_turns) = (0usize, 0usize, 0usize);
    let mut total_len = 0usize;
    for (i, turn) in input.turns.iter().enumerate().rev() {
        let text: &'t str = turn.text.as_ref();
        total_len += text.len();
        match turn.role {
            Role::System => {
                system_len += text.len();
                let budget = SYSTEM_BYTES.saturating_sub(sys_bytes);
                if budget > 0 {
                    let part = head(text, budget);
                    sys_bytes += part.len();
                    let mut em = Emitter::new(Some(&mut *sink), Section::System, false, false);
                    scan(part, &mut Stats::default(), &mut em);
                }
                continue;
            }
            Role::Assistant => assistant_turns += 1,
            Role::Tool => tool_turns += 1,
            Role::User => {}
        }
        turns += 1;
        if Some(i) == last_idx {
            continue;
        }
        earlier_len += text.len();
        if earlier_seen < EARLIER_TURNS {
            earlier_seen += 1;
            let mut em = Emitter::new(Some(&mut *sink), Section::Earlier, false, false);
            scan(head(text, EARLIER_BYTES), &mut earlier, &mut em);
        }
    }

    let mut d = Dense {
        values: [0.0; N_DENSE],
        turns,
    };
    let chars = st.chars.max(1) as f32;
    let letters = st.letters.max(1) as f32;
    let words = st.words as f32;
    let f = |x: u32| x as f32;
    d.set(D::BIAS, 1.0);
    d.set(D::LAST_LEN, log_scaled(last.len() as f32, 8.0));
    d.set(D::TOTAL_LEN, log_scaled(total_len as f32, 10.0));
    d.set(D::TURNS, log_scaled(turns as f32, 3.0));
    d.set(D::MULTI_TURN, f32::from(u8::from(turns > 1)));
    d.set(D::ASSISTANT_TURNS, log_scaled(assistant_turns as f32, 3.0));
    d.set(D::TOOL_TURNS, f32::from(u8::from(tool_turns > 0)));
    d.set(D::SYSTEM, f32::from(u8::from(system_len > 0)));
    d.set(D::SYSTEM_LEN, log_scaled(system_len as f32, 8.0));
    d.set(D::WORDS, log_scaled(words, 6.0));
    d.set(D::LINES, log_scaled(f(st.newlines), 5.0));
    d.set(
        D::FIRST_LINE_LEN,
        log_scaled(st.first_line_bytes as f32, 7.0),
    );
    let rest = last.len().saturating_sub(st.first_line_bytes);
    d.set(D::REST_LEN, log_scaled(rest as f32, 8.0));
    d.set(D::CODE_FENCE, f32::from(u8::from(st.fences > 0)));
    d.set(D::CODE_FENCES, (f(st.fences) / 4.0).min(1.5));
    d.set(D::CODE_KEYWORDS, log_scaled(f(st.code_kw), 3.0));
    d.set(D::CODE_IDENTS, log_scaled(f(st.code_idents), 3.0));
    d.set(D::CODE_PUNCT, log_scaled(f(st.code_punct), 4.0));
    d.set(D::STACK_TRACE, f32::from(u8::from(st.stack_lines > 0)));
    d.set(D::MATH_LATEX, log_scaled(f(st.latex), 3.0));
    d.set(D::MATH_SYMBOLS, log_scaled(f(st.math_symbols), 3.0));
    d.set(D::ARITHMETIC, log_scaled(f(st.arithmetic), 3.0));
    d.set(D::DIGIT_SHARE, (f(st.digits) / chars * 5.0).min(1.0));
    d.set(D::NUMBERS, log_scaled(f(st.numbers), 3.0));
    d.set(D::MULTI_STEP, log_scaled(f(st.steps), 2.0));
    d.set(D::CONSTRAINTS, log_scaled(f(st.constraints), 2.0));
    d.set(
        D::ENDS_WITH_QUESTION,
        f32::from(u8::from(matches!(st.last_visible, '?' | '？'))),
    );
    d.set(D::QUESTION_MARKS, log_scaled(f(st.questions), 2.0));
    d.set(D::WH_START, f32::from(u8::from(st.wh_start)));
    d.set(D::LIST_ITEMS, log_scaled(f(st.list_items), 2.0));
    d.set(D::MC_OPTIONS, (f(st.mc_options) / 4.0).min(1.0));
    d.set(D::HAS_TOOLS, f32::from(u8::from(input.has_tools)));
    d.set(
        D::RF_JSON_OBJECT,
        f32::from(u8::from(
            input.response_format == Some(ResponseFormat::JsonObject),
        )),
    );
    d.set(
        D::RF_JSON_SCHEMA,
        f32::from(u8::from(
            input.response_format == Some(ResponseFormat::JsonSchema),
        )),
    );
    d.set(
        D::MAX_TOKENS_SET,
        f32::from(u8::from(input.max_tokens.is_some())),
    );
    d.set(
        D::MAX_TOKENS,
        log_scaled(input.max_tokens.unwrap_or(0) as f32, 9.0),
    );
    let share = |x: u32| f(x) / letters;
    d.set(D::CJK_SHARE, share(st.cjk));
    d.set(D::KANA_HANGUL_SHARE, share(st.kana_hangul));
    d.set(D::CYRILLIC_SHARE, share(st.cyrillic));
    d.set(D::ARABIC_SHARE, share(st.arabic));
    d.set(D::OTHER_SCRIPT_SHARE, share(st.other_script));
    let latin = share(st.ascii_letters);
    d.set(
        D::MIXED_SCRIPT,
        f32::from(u8::from(latin > 0.1 && latin < 0.9 && st.letters > 8)),
    );
    d.set(D::UPPER_SHARE, (f(st.upper) / letters * 2.0).min(1.0));
    d.set(D::PARAGRAPHS, log_scaled(f(st.blank_lines), 2.0));
    d.set(D::URL_EMAIL, f32::from(u8::from(st.url_email > 0)));
    d.set(D::QUOTES, log_scaled(f(st.quotes), 3.0));
    d.set(D::EARLIER_LEN, log_scaled(earlier_len as f32, 10.0));
    d.set(
        D::LAST_SHARE,
        if total_len == 0 {
            1.0
        } else {
            last.len() as f32 / total_len as f32
        },
    );
    d.set(D::JSON_LIKE, log_scaled(f(st.json_like), 3.0));
    d.set(D::TABLE, log_scaled(f(st.pipes), 3.0));
    d.set(
        D::AVG_WORD_LEN,
        if st.words == 0 {
            0.0
        } else {
            (f(st.word_chars) / words / 10.0).min(1.5)
        },
    );
    d.set(D::SHORT, f32::from(u8::from(st.words + st.cjk / 2 <= 8)));
    d.set(
        D::EARLIER_CODE,
        f32::from(u8::from(
            earlier.fences > 0 || earlier.code_kw + earlier.code_idents > 3,
        )),
    );
    d.set(
        D::EARLIER_MATH,
        f32::from(u8::from(earlier.latex + earlier.arithmetic > 2)),
    );
    d
}

/// Sink that only counts; used by tests and by callers that want the dense features alone.
#[cfg(test)]
pub(crate) struct NullSink;

#[cfg(test)]
impl<'t> Sink<'t> for NullSink {
    fn hashed(&mut self, _: Section, _: u32, _: Option<&'t str>) {}
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::classify::input::Turn;
    use std::borrow::Cow;

    struct Collect(Vec<(Section, u32, Option<String>)>);
    impl<'t> Sink<'t> for Collect {
        fn hashed(&mut self, s: Section, b: u32, w: Option<&'t str>) {
            self.0.push((s, b, w.map(str::to_owned)));
        }
    }

    fn dense(text: &str) -> Dense {
        extract(&Input::from_prompt(text), &mut NullSink)
    }

    #[test]
    fn detects_code_fence_and_identifiers() {
        let d = dense("Fix this:\n```rust\nfn main() { let my_var = foo(1); }\n```\n");
        assert_eq!(d.get(D::CODE_FENCE), 1.0);
        assert!(d.get(D::CODE_KEYWORDS) > 0.0);
        assert!(d.get(D::CODE_IDENTS) > 0.0);
        assert!(d.get(D::CODE_PUNCT) > 0.0);
        assert_eq!(
            dense("Tell me a story about a fox.").get(D::CODE_FENCE),
            0.0
        );
    }

    #[test]
    fn detects_stack_traces() {
        let py = "Why does this fail?\nTraceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    main()\nValueError: bad";
        assert_eq!(dense(py).get(D::STACK_TRACE), 1.0);
        let java = "Exception in thread \"main\" java.lang.NullPointerException\n    at com.example.App.run(App.java:42)";
        assert_eq!(dense(java).get(D::STACK_TRACE), 1.0);
        assert_eq!(dense("At noon we eat (usually).").get(D::STACK_TRACE), 0.0);
    }

    #[test]
    fn detects_maths_notation_and_numbers() {
        let d = dense("Solve $x^2 + 3x - 4 = 0$ and compute \\frac{1}{2} + 7 * 8.");
        assert!(d.get(D::MATH_LATEX) > 0.0);
        assert!(d.get(D::MATH_SYMBOLS) > 0.0);
        assert!(d.get(D::ARITHMETIC) > 0.0);
        assert!(d.get(D::NUMBERS) > 0.0);
        assert_eq!(dense("Write a poem about rain").get(D::MATH_LATEX), 0.0);
    }

    #[test]
    fn measures_scripts() {
        let d = dense("请把这段话翻译成英文。");
        assert!(d.get(D::CJK_SHARE) > 0.9);
        let d = dense("Переведи этот текст на английский язык");
        assert!(d.get(D::CYRILLIC_SHARE) > 0.9);
        let d = dense("ترجم هذا النص");
        assert!(d.get(D::ARABIC_SHARE) > 0.9);
        let d = dense("Translate 你好世界 into French please");
        assert_eq!(d.get(D::MIXED_SCRIPT), 1.0);
    }

    #[test]
    fn counts_turns_and_roles() {
        let input = Input {
            turns: vec![
                Turn {
                    role: Role::System,
                    text: Cow::Borrowed("You are helpful."),
                },
                Turn {
                    role: Role::User,
                    text: Cow::Borrowed("hi"),
                },
                Turn {
                    role: Role::Assistant,
                    text: Cow::Borrowed("Hello! How can I help?"),
                },
                Turn {
                    role: Role::User,
                    text: Cow::Borrowed("what's the weather like?"),
                },
            ],
            has_tools: true,
            response_format: Some(ResponseFormat::JsonObject),
            max_tokens: Some(4096),
        };
        let d = extract(&input, &mut NullSink);
        assert_eq!(d.turns, 3);
        assert_eq!(d.get(D::MULTI_TURN), 1.0);
        assert_eq!(d.get(D::SYSTEM), 1.0);
        assert_eq!(d.get(D::HAS_TOOLS), 1.0);
        assert_eq!(d.get(D::RF_JSON_OBJECT), 1.0);
        assert!(d.get(D::MAX_TOKENS) > 0.8);
        assert_eq!(d.get(D::ENDS_WITH_QUESTION), 1.0);
        assert_eq!(d.get(D::WH_START), 1.0);
        assert!(d.get(D::EARLIER_LEN) > 0.0);
    }

    #[test]
    fn hashes_lowercase_words_bigrams_and_ideographs() {
        let mut a = Collect(Vec::new());
        let input = Input::from_prompt("Translate THIS");
        extract(&input, &mut a);
        let mut b = Collect(Vec::new());
        let input2 = Input::from_prompt("translate this");
        extract(&input2, &mut b);
        let buckets = |c: &Collect| c.0.iter().map(|(s, b, _)| (*s, *b)).collect::<Vec<_>>();
        assert_eq!(buckets(&a), buckets(&b));
        assert!(a.0.iter().any(|(s, _, _)| *s == Section::LastBigram));
        assert_eq!(a.0[1].2.as_deref(), Some("Translate"));
        let mut c = Collect(Vec::new());
        let input3 = Input::from_prompt("你好世界");
        extract(&input3, &mut c);
        assert!(
            c.0.iter()
                .filter(|(s, _, _)| *s == Section::LastChar)
                .count()
                >= 7
        );
        assert!(c.0.iter().all(|(_, b, _)| (*b as usize) < N_HASHED));
    }

    #[test]
    fn finds_first_and_last_sentences() {
        let t = "Incident report. Lots of pasted text here.\nMore lines.\n\ntl;dr pls";
        assert_eq!(first_sentence(t), "Incident report.");
        assert_eq!(last_sentence(t), "tl;dr pls");
        assert_eq!(
            last_sentence("Summarize this. Then translate it?!  "),
            "Then translate it?!"
        );
        assert_eq!(first_sentence("  请总结。后面"), "请总结。");
        assert_eq!(last_sentence(""), "");
        assert!(first_sentence(&"é".repeat(1000)).len() <= INSTR_BYTES);
        let mut c = Collect(Vec::new());
        let input = Input::from_prompt("Long text.\nSummarize it");
        extract(&input, &mut c);
        assert!(c.0.iter().any(|(s, _, _)| *s == Section::Instr));
    }

    #[test]
    fn caps_work_on_huge_inputs_without_panicking() {
        let big = "é漢a\n".repeat(100_000);
        let mut c = Collect(Vec::new());
        let input = Input::from_prompt(&big);
        let d = extract(&input, &mut c);
        assert!(c.0.len() < 4 * (LAST_HEAD + LAST_TAIL));
        assert!(d.values.iter().all(|v| v.is_finite()));
        assert_eq!(
            fnv_str("abc"),
            b"abc".iter().fold(FNV_OFFSET, |h, b| fnv_byte(h, *b))
        );
    }
}
