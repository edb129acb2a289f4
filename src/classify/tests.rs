//! End-to-end tests against the shipped weights (`Model::embedded`), with prompts written here.
//! They never read the public data sets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::borrow::Cow;
use std::time::Instant;

use super::*;

fn model() -> Model {
    Model::embedded().expect("embedded weights load")
}

fn multi<'a>(turns: &[&'a str]) -> Input<'a> {
    Input {
        turns: turns
            .iter()
            .enumerate()
            .map(|(i, t)| Turn {
                role: if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                },
                text: Cow::Borrowed(*t),
            })
            .collect(),
        ..Input::default()
    }
}

const LONG_TEXT: &str = "The regional transport authority published its annual report on Monday. \
Ridership on buses rose by 9 percent compared with last year, while tram use stayed flat. \
The authority blamed delays on roadworks in the city centre and on a shortage of drivers, \
and it plans to hire 120 new drivers before the winter timetable starts in November. \
Ticket prices will stay the same, but a new monthly pass for students will cost 25 euros. \
Officials also announced a pilot of on-demand minibuses in two suburbs with poor coverage.";

fn check(m: &Model, task: Task, label: &str, input: &Input<'_>) -> Option<String> {
    let c = m.classify(input, &Thresholds::default());
    (c.task != task).then(|| format!("{task} [{label}] -> {} ({:.2})", c.task, c.task_confidence))
}

#[test]
fn classifies_each_task_in_several_shapes() {
    let m = model();
    let long_summary = format!("Summarize the following report in three sentences.\n\n{LONG_TEXT}");
    let long_translate =
        format!("Translate the following text into German, keep the numbers.\n\n{LONG_TEXT}");
    let long_extract = format!(
        "Extract every number in this report together with what it counts, as a JSON list.\n\n{LONG_TEXT}"
    );
    let long_classify = format!(
        "Classify the topic of this article as one of: politics, sport, transport, health, technology. Answer with the label only.\n\n{LONG_TEXT}"
    );
    let long_chat = "hey! so today was kind of a weird day honestly. i woke up late, missed the bus, \
        and then my friend called and we ended up chatting for an hour about nothing in particular. \
        anyway i'm home now, just relaxing with some tea. how's your evening going?";
    let cases: Vec<(Task, &str, Input<'_>)> = vec![
        (
            Task::Code,
            "short",
            Input::from_prompt("Write a Python function that checks if a string is a palindrome."),
        ),
        (
            Task::Code,
            "long",
            Input::from_prompt(
                "This handler panics under load and I can't see why.\n```rust\nasync fn handle(req: Request<Body>, state: Arc<State>) -> Result<Response<Body>, Error> {\n    let mut guard = state.cache.lock().unwrap();\n    let key = req.uri().path().to_string();\n    if let Some(v) = guard.get(&key) { return Ok(Response::new(v.clone().into())); }\n    let body = fetch(&key).await?;\n    guard.insert(key, body.clone());\n    Ok(Response::new(body.into()))\n}\n```\nthread 'tokio-runtime-worker' panicked at 'called `Result::unwrap()` on an `Err` value: PoisonError'\nHow should I restructure it?",
            ),
        ),
        (
            Task::Code,
            "multi-turn",
            multi(&[
                "I'm building a CLI in Go.",
                "Nice, what do you need help with?",
                "How do I parse command-line flags with subcommands using only the standard library?",
            ]),
        ),
        (
            Task::Code,
            "non-English",
            Input::from_prompt(
                "Écris une fonction JavaScript qui trie un tableau d'objets par date.",
            ),
        ),
        (
            Task::Math,
            "short",
            Input::from_prompt("What is 17% of 350?"),
        ),
        (
            Task::Math,
            "long",
            Input::from_prompt(
                "A train leaves at 9:40 travelling at 84 km/h; a second train leaves the same station at 10:15 on a parallel track at 120 km/h. At what time does the second train catch up, and how far from the station are they then? Give exact values.",
            ),
        ),
        (
            Task::Math,
            "multi-turn",
            multi(&[
                "Can you help me with my homework?",
                "Of course! What's the problem?",
                "Solve x^2 - 5x + 6 = 0 and show the factorisation.",
            ]),
        ),
        (
            Task::Math,
            "non-English",
            Input::from_prompt("一个长方形的长是8厘米，宽是5厘米，它的面积和周长分别是多少？"),
        ),
        (
            Task::Reasoning,
            "short",
            Input::from_prompt(
                "If no cats are dogs and some pets are cats, must some pets not be dogs? Explain the logic.",
            ),
        ),
        (
            Task::Reasoning,
            "long",
            Input::from_prompt(
                "Four friends, Ann, Ben, Cho and Dev, each own exactly one pet: a cat, a dog, a parrot or a fish. Ann is allergic to fur. Ben's pet can talk. Cho does not own the dog. Using only these clues, deduce who owns which pet, explaining each step of the deduction and why the alternatives are ruled out.",
            ),
        ),
        (
            Task::Reasoning,
            "multi-turn",
            multi(&[
                "Let's do a logic puzzle.",
                "Sure, I love puzzles!",
                "All wizards are tall. Some tall people are bakers. Does it follow that some wizards are bakers? Reason it through.",
            ]),
        ),
        (
            Task::Reasoning,
            "non-English",
            Input::from_prompt(
                "Si tous les oiseaux volent et qu'un pingouin est un oiseau, le pingouin vole-t-il ? Explique le raisonnement logique et l'erreur éventuelle dans la prémisse.",
            ),
        ),
        (
            Task::Summarization,
            "short",
            Input::from_prompt(
                "Summarize: The shop will close early on Friday because of the staff party, and reopen Saturday at 9.",
            ),
        ),
        (
            Task::Summarization,
            "long",
            Input::from_prompt(&long_summary),
        ),
        (
            Task::Summarization,
            "multi-turn",
            multi(&[
                LONG_TEXT,
                "Thanks for sharing. What should I do with it?",
                "Give me a two-line summary.",
            ]),
        ),
        (
            Task::Summarization,
            "non-English",
            Input::from_prompt(
                "请用一句话总结下面这段新闻：市政府周一宣布，明年将新建三条地铁线路，以缓解交通拥堵。",
            ),
        ),
        (
            Task::Translation,
            "short",
            Input::from_prompt("Translate to Spanish: good night, see you tomorrow"),
        ),
        (
            Task::Translation,
            "long",
            Input::from_prompt(&long_translate),
        ),
        (
            Task::Translation,
            "multi-turn",
            multi(&[
                "Translate 'thank you very much' into Japanese.",
                "どうもありがとうございます (dōmo arigatō gozaimasu).",
                "And how would I translate 'see you next week' into Japanese?",
            ]),
        ),
        (
            Task::Translation,
            "non-English",
            Input::from_prompt("Traduis cette phrase en anglais : le chat dort sur le canapé."),
        ),
        (
            Task::Extraction,
            "short",
            Input::from_prompt(
                "Extract the email address from: contact us at help@shop.example for refunds.",
            ),
        ),
        (Task::Extraction, "long", Input::from_prompt(&long_extract)),
        (
            Task::Extraction,
            "multi-turn",
            multi(&[
                "I'll paste an invoice next.",
                "Sure, go ahead.",
                "Invoice 2291 from Delta Parts Ltd, issued 4 May 2024, total 1,250.00 EUR, due 3 June 2024. Extract the invoice number, supplier, total and due date as JSON.",
            ]),
        ),
        (
            Task::Extraction,
            "non-English",
            Input::from_prompt(
                "从下面的文字中提取所有的人名和日期：张伟于2023年5月1日加入公司，李娜于2022年3月入职。",
            ),
        ),
        (
            Task::Classification,
            "short",
            Input::from_prompt("Classify the sentiment: \"the food was cold and bland\""),
        ),
        (
            Task::Classification,
            "long",
            Input::from_prompt(&long_classify),
        ),
        (
            Task::Classification,
            "multi-turn",
            multi(&[
                "I have some customer reviews to sort.",
                "Happy to help. Send them over.",
                "Label this one as positive, negative or neutral: 'Delivery was quick but the box was damaged.'",
            ]),
        ),
        (
            Task::Classification,
            "non-English",
            Input::from_prompt("将下面的评论分类为正面或负面：这家餐厅的服务太差了。"),
        ),
        (
            Task::OpenQa,
            "short",
            Input::from_prompt("Who painted the Mona Lisa?"),
        ),
        (
            Task::OpenQa,
            "long",
            Input::from_prompt(
                "I've always wondered about this and never found a clear explanation anywhere: why do we have leap years, how exactly is it decided which years are leap years, and what would happen to the calendar over a few centuries if we simply stopped adding the extra day?",
            ),
        ),
        (
            Task::OpenQa,
            "multi-turn",
            multi(&[
                "I'm reading about space.",
                "Great topic! What would you like to know?",
                "How far is the Moon from the Earth?",
            ]),
        ),
        (
            Task::OpenQa,
            "non-English",
            Input::from_prompt("世界上最高的山峰是哪一座？"),
        ),
        (
            Task::CreativeWriting,
            "short",
            Input::from_prompt("Write a poem about the sea at night."),
        ),
        (
            Task::CreativeWriting,
            "long",
            Input::from_prompt(
                "Write a short story (about 500 words) about an old lighthouse keeper who finds a message in a bottle from his younger self. Use a melancholic but hopeful tone, include some dialogue, and end with a twist.",
            ),
        ),
        (
            Task::CreativeWriting,
            "multi-turn",
            multi(&[
                "I want to surprise my partner.",
                "How lovely! What do you have in mind?",
                "Write a romantic poem for our anniversary, mention the beach where we met.",
            ]),
        ),
        (
            Task::CreativeWriting,
            "non-English",
            Input::from_prompt("写一首关于秋天的短诗。"),
        ),
        (
            Task::Brainstorming,
            "short",
            Input::from_prompt("Give me ideas for a 10-year-old's birthday party."),
        ),
        (
            Task::Brainstorming,
            "long",
            Input::from_prompt(
                "Our nonprofit runs free coding workshops for teenagers, but attendance dropped by half this year. Brainstorm a list of ideas to attract more students, partner with schools and keep volunteers motivated; aim for variety over polish.",
            ),
        ),
        (
            Task::Brainstorming,
            "multi-turn",
            multi(&[
                "I'm planning a weekend trip with friends.",
                "Fun! Where are you going?",
                "Not sure yet, can you suggest some ideas for activities near the mountains?",
            ]),
        ),
        (
            Task::Brainstorming,
            "non-English",
            Input::from_prompt("列出一些提高工作效率的方法。"),
        ),
        (
            Task::Chat,
            "short",
            Input::from_prompt("hey, how has your week been?"),
        ),
        (Task::Chat, "long", Input::from_prompt(long_chat)),
        (
            Task::Chat,
            "multi-turn",
            multi(&[
                "hi!",
                "Hello! How are you today?",
                "pretty good, just chilling. you?",
            ]),
        ),
        (
            Task::Chat,
            "non-English",
            Input::from_prompt("salut, ça va ?"),
        ),
    ];
    let failures: Vec<(Task, String)> = cases
        .iter()
        .filter_map(|(t, label, input)| check(&m, *t, label, input).map(|f| (*t, f)))
        .collect();
    let report = failures
        .iter()
        .map(|(_, f)| f.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    // Known limit (see CLASSIFIER.md): the shipped weights miss one case (the long open_qa
    // prompt, read as reasoning). Every task must get at least three of its four shapes right,
    // and at most two of the 44 cases may miss; tighten further as the labelled data grows.
    for t in Task::ALL {
        let missed = failures.iter().filter(|(ft, _)| *ft == t).count();
        assert!(missed <= 1, "{t} missed {missed} of 4 shapes:\n{report}");
    }
    assert!(
        failures.len() <= 2,
        "{} of {} misclassified:\n{report}",
        failures.len(),
        cases.len()
    );
    if !failures.is_empty() {
        eprintln!("known misses:\n{report}");
    }
}

#[test]
fn hard_prompts_score_above_routine_ones() {
    let m = model();
    let t = Thresholds::default();
    let routine = m.classify(
        &Input::from_prompt("Translate to French: where is the station?"),
        &t,
    );
    let hard = m.classify(&Input::from_prompt("Implement a lock-free multi-producer multi-consumer queue in C++20 with hazard pointers for memory reclamation. It must be linearizable, avoid ABA problems, and include a proof sketch of progress guarantees plus benchmarks comparing it to a mutex-based queue under contention."), &t);
    assert!(
        hard.difficulty_score > routine.difficulty_score,
        "{hard:?} vs {routine:?}"
    );
    assert_eq!(routine.difficulty, Difficulty::Easy);
}

#[test]
fn signals_are_named_and_bounded() {
    let m = model();
    let c = m.classify(
        &Input::from_prompt("Fix this:\n```python\nprint(1/0)\n```\nTraceback (most recent call last):\n  File \"a.py\", line 1\nZeroDivisionError"),
        &Thresholds::default(),
    );
    assert_eq!(c.task, Task::Code);
    assert!(!c.signals.is_empty() && c.signals.len() <= 5);
    for s in &c.signals {
        assert!(!s.name.is_empty() && s.name.len() < 60, "{s:?}");
        assert!(s.weight.is_finite());
    }
    let mut turns = vec![];
    for i in 0..14 {
        turns.push(if i % 2 == 0 {
            "tell me more"
        } else {
            "Sure, here is more."
        });
    }
    let c = m.classify(&multi(&turns), &Thresholds::default());
    assert!(c.signals.iter().all(|s| s.name.len() < 60));
}

/// The request path's classification is the explained one without its signals: same task,
/// confidence, score and level, bit for bit.
#[test]
fn unexplained_classification_equals_the_explained_one_without_signals() {
    let m = model();
    let t = Thresholds::default();
    for prompt in [
        "Translate to French: where is the station?",
        "Fix this:\n```python\nprint(1/0)\n```\nTraceback (most recent call last):",
        "Prove that the square root of 2 is irrational, step by step.",
        "写一首关于秋天的诗",
    ] {
        let input = Input::from_prompt(prompt);
        let explained = m.classify(&input, &t);
        let lean = m.classify_unexplained(&input, &t);
        assert!(!explained.signals.is_empty(), "{prompt}");
        assert!(lean.signals.is_empty());
        assert_eq!(lean.task, explained.task);
        assert_eq!(lean.difficulty, explained.difficulty);
        assert_eq!(
            lean.difficulty_score.to_bits(),
            explained.difficulty_score.to_bits()
        );
        assert_eq!(
            lean.task_confidence.to_bits(),
            explained.task_confidence.to_bits()
        );
    }
}

#[test]
fn task_and_difficulty_names_round_trip() {
    for t in Task::ALL {
        assert_eq!(t.as_str().parse::<Task>().unwrap(), t);
        assert_eq!(
            serde_json::to_value(t).unwrap(),
            serde_json::json!(t.as_str())
        );
    }
    assert_eq!(Task::OpenQa.as_str(), "open_qa");
    assert!("poetry".parse::<Task>().is_err());
    for d in [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard] {
        assert_eq!(d.as_str().parse::<Difficulty>().unwrap(), d);
    }
    let th = Thresholds::default();
    assert_eq!(
        (th.level(0.2), th.level(0.35), th.level(0.65)),
        (Difficulty::Easy, Difficulty::Medium, Difficulty::Hard)
    );
}

#[test]
fn long_conversations_stay_fast_enough() {
    // A smoke check only (debug-ish build); the criterion bench in the main crate is the real gate.
    let m = model();
    let big_turn = "Here is some more context about the system we are building. ".repeat(90);
    let turns: Vec<&str> = (0..8).map(|_| big_turn.as_str()).collect();
    let input = multi(&turns);
    assert!(input.turns.iter().map(|t| t.text.len()).sum::<usize>() > 32 * 1024);
    let started = Instant::now();
    for _ in 0..20 {
        let _ = m.classify(&input, &Thresholds::default()); // result unused: timing only
    }
    assert!(started.elapsed().as_millis() < 2_000);
}
