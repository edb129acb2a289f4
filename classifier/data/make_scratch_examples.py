#!/usr/bin/env python3
"""Writes switchyard_own_scratch.jsonl: switchyard's own hand-written labelled examples (templates
and fillers written by the switchyard team, no third-party text) for the tasks the public data
lacks (translation, summarization, extraction, classification, brainstorming, chat) plus
conversational code / maths / reasoning / open QA / creative writing. Deterministic."""
import json, random, os

rng = random.Random(20261126)
PASSAGES = [
    "Our quarterly revenue grew 12% to $4.1M, driven by the new enterprise tier, while churn fell from 3.1% to 2.4%. Hiring slowed; we added 6 engineers instead of the planned 10. Cloud costs rose 18% after the migration and remain the main risk for next quarter.",
    "The city council met on Tuesday to discuss the new bike lanes on Main Street. Residents complained about lost parking, but shop owners reported more foot traffic. The council voted 5 to 2 to keep the lanes for a six-month trial and to review the data in March.",
    "Maria Lopez, 34, joined Acme Corp on 3 March 2021 as a senior data analyst in the Berlin office. Her manager is Tom Becker. She can be reached at maria.lopez@acme.example or +49 30 1234567.",
    "The patient reported a persistent dry cough for three weeks, mild fever in the evenings and fatigue. No history of smoking. Chest X-ray showed no abnormalities. The doctor prescribed rest, fluids and a follow-up visit in ten days.",
    "Thanks for reaching out! Unfortunately your order #48213 was delayed because the warehouse ran out of the blue size M hoodie. We expect new stock on Friday and will ship it with express delivery at no extra cost. Sorry for the trouble.",
    "Scientists have found that honeybees can count up to four and understand the concept of zero. In experiments, bees were trained to choose cards with fewer shapes, and later picked empty cards over cards with one shape, suggesting an abstract sense of nothing.",
    "Meeting notes: Alice will finish the API migration by June 12. Bob owns the load tests and needs two more staging servers. We agreed to drop support for the v1 endpoints in Q3. Next sync is Thursday at 10:00.",
    "The new phone has a 6.1-inch screen, 128 GB of storage and a battery that lasts about a day and a half. Reviewers praised the camera in low light but criticised the slow charging and the price of 899 euros.",
]
SENTENCES = [
    "The meeting has been moved to Thursday afternoon.", "Please keep your ticket until the end of the journey.",
    "I would like to book a table for two at eight o'clock.", "Our office will be closed on Monday for the public holiday.",
    "Could you send me the invoice again?", "The train to the airport leaves every fifteen minutes.",
    "Thank you for your patience while we fix the problem.", "Where is the nearest pharmacy?",
    "The weather will be sunny with a light breeze tomorrow.", "Your package has been delivered to the front desk.",
    "We are looking forward to working with you.", "Do not forget to water the plants while I am away.",
]
LANGS = ["French", "Spanish", "German", "Italian", "Portuguese", "Japanese", "Chinese", "Russian", "Dutch", "Korean", "Arabic", "English"]
FOREIGN = [
    ("Je voudrais réserver une chambre pour deux nuits.", "French"), ("¿Dónde está la estación de tren más cercana?", "Spanish"),
    ("Ich habe meinen Schlüssel im Büro vergessen.", "German"), ("Il negozio apre alle nove di mattina.", "Italian"),
    ("Мы встретимся завтра в десять утра.", "Russian"), ("明日の会議は午後三時に始まります。", "Japanese"),
    ("这个周末我们去公园散步吧。", "Chinese"), ("오늘 저녁에 시간 있어요?", "Korean"), ("شكرا جزيلا على مساعدتك", "Arabic"),
    ("O relatório precisa de ser entregue até sexta-feira.", "Portuguese"),
]
TOPICS = ["a small bakery", "a mobile budgeting app", "a community garden", "a remote-first software team", "a school science fair",
          "a local bookshop", "a charity fun run", "an online cooking course", "a coworking space", "a podcast about history"]

def conv(*turns):
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]

rows = []
def add(task, diff, messages, system=None):
    if system:
        messages = [{"role": "system", "content": system}] + messages
    rows.append({"task_label": task, "difficulty_label": diff, "messages": messages})

# translation
tr_templates = ["Translate this into {lang}: {s}", "Please translate the following sentence to {lang}.\n\n{s}",
    "How do you say \"{s}\" in {lang}?", "Can you translate to {lang}: \"{s}\"", "{lang} translation please: {s}",
    "Translate from English to {lang}, keep it formal:\n{s}", "Give me the {lang} version of this text: {s}",
    "Render this sentence in {lang}: {s}", "I need this in {lang} for a customer email: {s}"]
for i in range(70):
    s = rng.choice(SENTENCES); lang = rng.choice(LANGS[:-1])
    add("translation", "easy", conv(rng.choice(tr_templates).format(lang=lang, s=s)))
for i in range(25):
    f, src = rng.choice(FOREIGN)
    t = rng.choice(["Translate to English: {f}", "What does this mean in English? {f}", "Please translate this {src} text into English:\n{f}",
                    "Traduis en anglais : {f}", "Traduce al inglés: {f}", "Übersetze ins Englische: {f}", "Переведи на английский: {f}", "请把这句话翻译成英文：{f}"])
    add("translation", "easy", conv(t.format(f=f, src=src)))
for i in range(15):
    p = rng.choice(PASSAGES); lang = rng.choice(LANGS[:-1])
    add("translation", "medium", conv(f"Translate the following paragraph into {lang}. Preserve numbers, names and the tone, and do not add anything.\n\n{p}"))
for i in range(12):
    s = rng.choice(SENTENCES); lang = rng.choice(LANGS[:-1]); s2 = rng.choice(SENTENCES)
    add("translation", "easy", conv(f"Translate into {lang}: {s}", f"(translation in {lang})", f"Now translate this one too: {s2}"))

# summarization
su_templates = ["Summarize this in two sentences:\n\n{p}", "TL;DR please:\n{p}", "Can you give me a short summary of the text below?\n\n{p}",
    "Summarise the following for a busy executive, max 3 bullet points.\n\n{p}", "{p}\n\nSummarize the above in one sentence.",
    "Write a brief summary of this article:\n\"\"\"\n{p}\n\"\"\"", "Condense this into a headline and a one-line summary: {p}",
    "What are the key points of this text? Keep it short.\n{p}", "Give me the gist of this:\n\n{p}"]
for i in range(70):
    p = " ".join(rng.sample(PASSAGES, rng.choice([1, 1, 2, 3])))
    add("summarization", rng.choice(["easy", "easy", "medium"]), conv(rng.choice(su_templates).format(p=p)))
for i in range(15):
    p = rng.choice(PASSAGES)
    add("summarization", "easy", conv(f"Here is an email I got:\n{p}", "Got it. What would you like me to do with it?", "Summarize it in one line."))
for i in range(10):
    p = " ".join(rng.sample(PASSAGES, 3))
    add("summarization", "medium", conv(p), system="You summarise documents for a legal team. Reply with a summary of at most 80 words.")

# extraction
ex_templates = ["Extract all names, dates and email addresses from this text as JSON:\n\n{p}", "From the text below, pull out every number and what it refers to.\n\n{p}",
    "List the people and their roles mentioned in this text:\n{p}", "Extract the action items and owners from these notes:\n{p}",
    "Find the price and the storage size in this review: {p}", "Return a JSON object with fields name, company, start_date, email from:\n{p}",
    "What dates are mentioned in this passage? Only list them.\n\n{p}", "Pull the key entities (people, organisations, places) out of this paragraph: {p}",
    "Extract the order number and the expected delivery day from this message: {p}"]
for i in range(70):
    p = rng.choice(PASSAGES)
    add("extraction", rng.choice(["easy", "easy", "medium"]), conv(rng.choice(ex_templates).format(p=p)),
        system=rng.choice([None, None, "You are a data extraction assistant. Answer with JSON only."]))
for i in range(10):
    p = rng.choice(PASSAGES)
    rows.append({"task_label": "extraction", "difficulty_label": "easy", "messages": conv(f"Extract the fields from this text:\n{p}"),
                 "response_format": {"type": "json_object"}})

# classification
CL_ITEMS = ["I love this product, it works perfectly!", "Terrible service, I waited two hours and nobody helped.",
    "The package arrived on time.", "Can I change my delivery address?", "My card was charged twice for the same order.",
    "Your app keeps crashing when I open the settings page.", "Great value for money, would buy again.", "How do I reset my password?",
    "The hotel room was dirty and smelled of smoke.", "It's okay, nothing special."]
cl_templates = ["Classify the sentiment of this review as positive, negative or neutral: \"{x}\"", "Is this customer message a complaint, a question or praise?\n\n{x}",
    "Label this support ticket with one of: billing, technical, shipping, account.\nTicket: {x}", "Categorize the following text into spam or not spam: {x}",
    "Which category fits best (bug report, feature request, question)? {x}", "Sentiment (positive/negative/neutral) only, no explanation: {x}",
    "Tag this tweet with its topic and sentiment: {x}", "Decide whether this message is urgent or not urgent: {x}",
    "Classify each of these as positive or negative:\n1. {x}\n2. {y}\n3. {z}"]
for i in range(75):
    x, y, z = rng.sample(CL_ITEMS, 3)
    add("classification", "easy", conv(rng.choice(cl_templates).format(x=x, y=y, z=z)))
for i in range(12):
    x = rng.choice(CL_ITEMS)
    add("classification", "easy", conv(f"Message: {x}"), system="You are a ticket router. Reply with exactly one label: billing, technical, shipping, account, other.")
for i in range(8):
    words = rng.sample(["apple", "tiger", "rose", "salmon", "oak", "eagle", "carrot", "whale", "tulip", "wolf"], 6)
    add("classification", "easy", conv("Sort these into animals and plants: " + ", ".join(words)))

# brainstorming
br_templates = ["Give me 10 ideas for {t}.", "Brainstorm names for {t}.", "What are some creative marketing ideas for {t}?",
    "List 5 ways to get more customers for {t}.", "I need ideas for a team-building activity at {t}. Any suggestions?",
    "Come up with possible features for {t}.", "Suggest some fun themes for an event organised by {t}.",
    "What could {t} do to reduce costs? Give me a list of options.", "Help me brainstorm blog post topics for {t}."]
for i in range(75):
    add("brainstorming", rng.choice(["easy", "easy", "medium"]), conv(rng.choice(br_templates).format(t=rng.choice(TOPICS))))
for i in range(12):
    t = rng.choice(TOPICS)
    add("brainstorming", "easy", conv(f"I'm starting {t}.", "That sounds exciting! How can I help?", "Can you give me some ideas for a name and a slogan?"))

# chat
CHAT = ["hi", "hello there!", "hey, how are you?", "good morning :)", "thanks, that was helpful!", "lol that's funny", "what's up?",
    "I'm bored, talk to me", "can you tell me a bit about yourself?", "how was your day?", "nice to meet you", "you're awesome, thanks",
    "ok cool", "I had a rough day at work today.", "do you like music?", "haha ok", "bye, talk later!", "what do you like to do for fun?",
    "I just got a puppy!", "sorry, I was away for a bit", "are you a robot?", "tell me something nice", "I'm so tired today",
    "merci beaucoup !", "hola, ¿qué tal?", "hallo, wie geht's?", "привет, как дела?", "你好，最近怎么样？", "こんにちは！元気？"]
for i in range(60):
    add("chat", "easy", conv(rng.choice(CHAT)))
for i in range(30):
    a, b, c = rng.sample(CHAT, 3)
    add("chat", "easy", conv(a, "Hi! I'm doing well, thanks for asking. How about you?", b, "Ha, I hear you. What's on your mind?", c),
        system=rng.choice([None, "You are a friendly companion. Keep replies short and warm."]))

# conversational code / maths / reasoning / open QA / creative writing (own, English)
CODE = ["Why does my Python loop print the last item twice?\n```python\nfor i in range(len(xs)):\n    print(xs[i])\nprint(xs[i])\n```",
    "How do I reverse a string in JavaScript?", "Write a SQL query that returns the 5 customers with the highest total order value.",
    "My Rust code fails with `borrowed value does not live long enough`. What does that mean?",
    "Refactor this function to be more readable:\n```js\nfunction f(a){return a.filter(x=>x%2==0).map(x=>x*2).reduce((s,x)=>s+x,0)}\n```",
    "Write a bash one-liner to count lines in all .py files.", "Fix this error:\nTraceback (most recent call last):\n  File \"main.py\", line 4, in <module>\n    print(total / count)\nZeroDivisionError: division by zero",
    "Implement a thread-safe LRU cache in Go with generics, and explain the locking strategy.", "Write a regex that matches ISO 8601 dates.",
    "Convert this Python dict comprehension to a for loop: {k: v*2 for k, v in d.items() if v > 0}"]
MATH = ["What is 15% of 240?", "Solve for x: 3x + 7 = 22.", "If a car travels 150 km in 2.5 hours, what is its average speed?",
    "What is the derivative of x^3 * sin(x)?", "How many ways can 5 people sit in a row?", "Is 221 a prime number?",
    "Compute the integral of 1/(1+x^2) from 0 to 1.", "A shirt costs $40 after a 20% discount. What was the original price?",
    "Prove that the sum of the first n odd numbers is n^2.", "What's the probability of rolling two sixes with two dice?"]
REASON = ["If all bloops are razzies and all razzies are lazzies, are all bloops definitely lazzies? Explain.",
    "Three boxes are labelled apples, oranges and mixed, and all labels are wrong. You may pick one fruit from one box. How do you relabel them?",
    "Alice is older than Bob. Carol is younger than Bob. Who is the youngest? Think it through.",
    "A bat and a ball cost $1.10 in total. The bat costs $1 more than the ball. How much does the ball cost? Explain your reasoning.",
    "Which weighs more, a kilo of feathers or a kilo of bricks, and why?", "What is the next number in the sequence 2, 6, 12, 20, 30? Justify the pattern.",
    "Should a small startup build its own data centre or use the cloud? Weigh the trade-offs and reach a conclusion.",
    "If it takes 5 machines 5 minutes to make 5 widgets, how long would 100 machines take to make 100 widgets? Reason step by step."]
QA = ["What is the capital of Australia?", "Who wrote Pride and Prejudice?", "How does a vaccine train the immune system?",
    "Why is the sky blue?", "What's the difference between a virus and a bacterium?", "When did the Berlin Wall fall?",
    "How many bones are in the adult human body?", "What does GDP measure?", "How do noise-cancelling headphones work?", "What causes the seasons on Earth?"]
CREATIVE = ["Write a short poem about autumn rain.", "Write a bedtime story about a brave little turtle.", "Write a haiku about coffee.",
    "Write the opening paragraph of a mystery novel set in Lisbon.", "Compose a limerick about a cat who loves lasagna.",
    "Write a heartfelt wedding toast for my best friend Sam.", "Write a short sci-fi story in which the moon starts talking, under 300 words.",
    "Write song lyrics about leaving your hometown."]
for task, items, diffs in [("code", CODE, ["easy", "medium", "hard"]), ("math", MATH, ["easy", "medium"]),
                           ("reasoning", REASON, ["medium", "hard"]), ("open_qa", QA, ["easy"]), ("creative_writing", CREATIVE, ["easy", "medium"])]:
    for i, x in enumerate(items * 2):
        d = rng.choice(diffs)
        if i >= len(items):
            add(task, d, conv(rng.choice(["hey", "hi, quick question", "I have another question"]), "Sure, go ahead.", x))
        else:
            add(task, d, conv(x))


# non-English instructions for every task (own phrasing), and more varied reasoning
NON_EN = {
 "code": ["Écris un script Python qui lit un fichier CSV et affiche la moyenne de la colonne prix.", "Escribe una función en Java que invierta una lista enlazada.",
          "Schreibe eine SQL-Abfrage, die alle Kunden ohne Bestellung findet.", "Comment corriger l'erreur `undefined is not a function` dans mon code JavaScript ?",
          "Напиши функцию на Python, которая проверяет, является ли число простым.", "用Java写一个冒泡排序的函数。", "Écris une classe C# pour gérer un panier d'achat.",
          "¿Cómo hago una petición HTTP en Rust con manejo de errores?"],
 "reasoning": ["Si tous les A sont des B et aucun B n'est un C, peut-on conclure qu'aucun A n'est un C ? Justifie.", "Si llueve, el suelo se moja. El suelo está mojado. ¿Podemos concluir que llovió? Razona.",
          "Wenn alle Katzen Säugetiere sind und Tom eine Katze ist, was folgt daraus logisch? Begründe deine Antwort.", "如果所有的鸟都会飞，企鹅是鸟，那么企鹅会飞吗？请分析这个推理的问题。",
          "Trois amis mentent ou disent toujours la vérité. Qui ment ? Explique ta déduction étape par étape.", "Если все розы — цветы, а некоторые цветы быстро вянут, следует ли, что некоторые розы быстро вянут? Объясни."],
 "summarization": ["Résume ce texte en deux phrases : {p}", "Resume el siguiente texto en tres puntos: {p}", "Fasse den folgenden Text kurz zusammen: {p}", "Кратко перескажи этот текст: {p}"],
 "extraction": ["Extrais les noms et les dates de ce texte : {p}", "Extrae todas las cifras del siguiente texto: {p}"],
 "classification": ["Classe ce commentaire comme positif ou négatif : « le service était lent ».", "Clasifica este mensaje como spam o no spam: «Ganaste un premio, haz clic aquí»."],
 "brainstorming": ["Donne-moi des idées pour un cadeau d'anniversaire original.", "Dame ideas para un nombre de cafetería.", "Sammle Ideen für ein Teamevent im Sommer."],
 "open_qa": ["Quelle est la capitale du Canada ?", "¿Quién inventó el teléfono?", "Wie funktioniert ein Kühlschrank?", "Почему небо голубое?"],
 "creative_writing": ["Écris un poème sur la mer.", "Escribe un cuento corto sobre un dragón tímido.", "Schreibe ein Gedicht über den Winter."],
 "math": ["Combien font 15 % de 80 ?", "Resuelve la ecuación 2x + 5 = 17.", "Berechne die Fläche eines Kreises mit Radius 3 cm."],
}
for task, items in NON_EN.items():
    for x in items:
        add(task, "easy" if task not in ("reasoning",) else "medium", conv(x.format(p=rng.choice(PASSAGES))))
REASON2 = ["Given these clues, work out the order in which the five runners finished: {c}", "Is the following argument valid? {c} Explain why or why not.",
           "Deduce which statement must be true: {c}", "Find the flaw in this reasoning: {c}", "Using only the premises, what can we conclude? {c}"]
CLUES = ["Ana finished before Ben, Ben after Cy, and Dee was last but one.", "All managers attend the meeting; Sam attended the meeting; therefore Sam is a manager.",
         "Exactly one of the three boxes contains gold, and each box has a label that may be false.", "If the alarm rings, the guard wakes; the guard did not wake.",
         "No reptiles have fur; some pets have fur; all snakes are reptiles."]
for i in range(30):
    add("reasoning", rng.choice(["medium", "hard"]), conv(rng.choice(REASON2).format(c=rng.choice(CLUES))))
for i in range(10):
    add("reasoning", "medium", conv("Can we try a riddle?", "Sure, go ahead!", rng.choice(REASON2).format(c=rng.choice(CLUES))))
for i in range(10):
    p = rng.choice(PASSAGES)
    add("summarization", "easy", conv(p, "Thanks, I've read it. What do you need?", rng.choice(["Summarize it briefly.", "Can you boil that down to two sentences?", "Short summary please."])))

ZH_SUM = ["请总结下面这段话的要点：{p}", "用两句话概括以下内容：{p}", "帮我把这篇文章缩短成一段摘要：{p}", "以下の文章を要約してください：{p}"]
for x in ZH_SUM:
    for i in range(3):
        add("summarization", "easy", conv(x.format(p=rng.choice(PASSAGES))))
CHAT2 = ["coucou, tu vas bien ?", "bonsoir ! quoi de neuf ?", "buenas, ¿cómo va todo?", "hey, wie läuft's bei dir?", "ciao, come stai?", "olá, tudo bem?",
         "salut ! je m'ennuie un peu", "jaja qué gracioso", "merci, bonne soirée !", "hallo! schönes Wochenende gehabt?"]
for x in CHAT2:
    add("chat", "easy", conv(x))
QA_LONG = ["I've been curious for a while and can't find a simple answer: how do airplanes actually stay in the air, and why can they fly upside down if lift comes from the wing shape?",
           "Could you explain what inflation is, what usually causes it, and how central banks try to bring it down?",
           "What is the difference between weather and climate, and why do scientists trust long-term climate projections more than a ten-day forecast?",
           "Why do we get jet lag, how long does it usually last, and what does the research say helps?",
           "How did the printing press change Europe in the fifteenth and sixteenth centuries?",
           "What happens in the body during sleep, and why do we feel terrible after a night without it?"]
for x in QA_LONG:
    add("open_qa", "medium", conv(x))
    add("open_qa", "medium", conv("I have a question.", "Sure, what is it?", x))

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "switchyard_own_scratch.jsonl")
with open(out, "w") as f:
    for i, r in enumerate(rows):
        r = {"id": f"switchyard-own-scratch:{i:04d}", "source": "switchyard_own_scratch", **r}
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
print(len(rows), "rows ->", out)
