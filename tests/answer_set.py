"""A small question set over the bundled samples, in Portuguese and English, with answers and unanswerable
questions: the regression gate for the extractive answerer (tests/test_answers.py).

Each entry: (question, expected): `expected` is a string the answer must contain, a tuple of strings it
must all contain, or None when the samples hold no answer and docqa must abstain. Written by hand from the
sample texts (samples/), including every kind of failure in the Answers issue.
"""

from __future__ import annotations

Expected = str | tuple[str, ...] | None

PORTUGUESE: list[tuple[str, Expected]] = [
    # laboratorio-ia.html: a page of short sections, each a heading and a paragraph
    ("Quantos parâmetros tem o Orion?", "7 bilhões"),
    ("Quantos parâmetros tem o Vega?", "1,3 bilhão"),
    ("Quantos parâmetros o Lyra usou no treinamento?", "120 milhões"),
    ("Quantas GPUs foram usadas para treinar o Orion?", "512 GPUs"),
    ("Quantos dias durou o treinamento do Orion?", "21 dias"),
    ("Quando o Orion foi lançado?", "março de 2024"),
    ("Quantos documentos o portal disponibiliza?", "2.400"),
    ("Quais são os dois produtos iniciais da linha Aurora?", ("Aurora Chat", "Aurora Voz")),
    ("Quem criou o laboratório?", "Helena Duarte"),
    ("Em que ano o laboratório foi criado?", "2019"),
    ("Onde fica o laboratório?", "Lisboa"),
    ("Em quantos idiomas o Sirius traduz?", "12 idiomas"),
    ("Quando funciona o suporte aos modelos?", "segunda a sexta"),
    ("Depois de quantos dias os registros de uso são apagados?", "90 dias"),
    ("Com quantas perguntas os modelos são avaliados?", "3.000"),
    ("Quando sai a próxima versão do Vega?", "2025"),
    # politica-de-ferias.md
    ("Quantos dias de férias por ano?", "30 dias"),
    ("Com quanto tempo de antecedência devo pedir férias?", "15 dias"),
    ("Quem aprova as férias?", "gestor direto"),
    ("Até quando devo enviar pedidos de férias para dezembro?", "31 de outubro"),
    ("Quantos dias de férias posso vender?", "10 dias"),
    # unanswerable
    ("Quanto custa a assinatura mensal do serviço Sirius?", None),
    ("Quem fundou a Orion?", None),
    ("Em que ano o Lyra foi lançado?", None),
    ("Quantos funcionários tem o escritório de Recife?", None),
    ("Qual é o salário de Helena Duarte?", None),
    ("Quantos dias de licença-maternidade a Northwind oferece?", None),
]

ENGLISH: list[tuple[str, Expected]] = [
    ("How many nodes does the staging cluster have?", "12 nodes"),
    ("How many nodes does production run?", "48 nodes"),
    ("When does the team meet for planning?", "every second Monday"),
    ("What is the deploy tool called?", "Shipwright"),
    ("How long do on-call shifts last?", "one week"),
    ("How much is the on-call stipend?", "250 euros"),
    ("How long are logs kept?", "30 days"),
    ("How big is the yearly learning budget?", "1,500 euros"),
    ("How long does a password reset link stay valid?", "45 minutes"),
    ("Where is my data stored?", "Frankfurt"),
    ("How many GPUs was the Atlas model trained on?", "64 GPUs"),
    ("Who led Project Atlas?", "Marta Okafor"),
    ("What was the total cost of Project Atlas?", "97,500 euros"),
    ("Where did the training run?", "Helsinki"),
    ("What is the gym allowance?", "40 euros"),
    ("What time should I arrive on my first day?", "9:30"),
    ("Which environments do we run?", ("development", "staging", "production")),
    # unanswerable
    ("How much does Shipwright cost?", None),
    ("Who founded Northwind?", None),
    ("What is the salary of Marta Okafor?", None),
    ("How many GPUs does the Helsinki data centre have?", None),
    ("When was Lighthouse first released?", None),
]
