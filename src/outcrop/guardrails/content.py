"""Content filters: HATE, INSULTS, SEXUAL, VIOLENCE, MISCONDUCT and PROMPT_ATTACK.

Outcrop's content filters are explicit English keyword and pattern rules, not a classifier:
each rule carries the confidence Bedrock would report (LOW, MEDIUM or HIGH), and a category's
confidence in a text is the highest of its matching rules. A filter blocks according to its
strength, as AWS documents it: HIGH strength blocks content of LOW, MEDIUM and HIGH confidence,
MEDIUM blocks MEDIUM and HIGH, LOW blocks only HIGH, NONE filters nothing. docs/guardrails.md
lists what each category's rules look for; the rules are in this module and deliberately
readable, so a test can say exactly which text trips which filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from outcrop.guardrails.model import Strength

Confidence = Strength
"""NONE, LOW, MEDIUM or HIGH: how surely a text belongs to a category."""

_RANK: dict[str, int] = {"NONE": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}
_BLOCKS_FROM: dict[str, int] = {"NONE": 4, "LOW": 3, "MEDIUM": 2, "HIGH": 1}
"""For each filter strength, the lowest confidence rank it blocks (4: nothing)."""


def blocks(strength: Strength, confidence: Confidence) -> bool:
    """Whether a filter of `strength` acts on content of `confidence`."""
    return confidence != "NONE" and _RANK[confidence] >= _BLOCKS_FROM[strength]


_GROUPS = (
    r"(?:immigrants|refugees|foreigners|migrants|muslims|jews|christians|hindus|buddhists|"
    r"sikhs|atheists|blacks|whites|asians|hispanics|latinos|arabs|gays|lesbians|homosexuals|"
    r"trans(?:gender)? people|women|men|disabled people|mexicans|africans|chinese|indians|"
    r"gypsies|roma)"
)

_PERSON_INSULT = (
    r"(?:idiot|moron|imbecile|loser|dumbass|retard|scumbag|piece of (?:shit|garbage|trash)|"
    r"waste of (?:space|oxygen))"
)

PromptAttackKind = str
"""JAILBREAK, PROMPT_INJECTION or PROMPT_LEAKAGE: the kinds InvokeGuardrailChecks reports."""

PROMPT_ATTACK_KINDS = ("JAILBREAK", "PROMPT_INJECTION", "PROMPT_LEAKAGE")

_PROMPT_ATTACK: list[tuple[Confidence, PromptAttackKind, str]] = [
    (
        "HIGH",
        "PROMPT_INJECTION",
        r"\b(?:ignore|disregard|forget|override) (?:all |any |everything )?(?:of )?(?:the |"
        r"your |my |these |those )?(?:previous|prior|above|earlier|preceding|system|original|"
        r"initial) (?:instructions|prompts?|rules|directions|guidelines|directives)\b",
    ),
    (
        "HIGH",
        "JAILBREAK",
        r"\bdo anything now\b|\b(?:developer|god|jailbreak|unrestricted|DAN) mode\b",
    ),
    (
        "HIGH",
        "PROMPT_LEAKAGE",
        r"\b(?:reveal|print|show|repeat|output|tell me) (?:me )?(?:your|the) (?:full |entire "
        r")?(?:system prompt|hidden instructions|initial instructions|instructions above|"
        r"original instructions)\b",
    ),
    (
        "MEDIUM",
        "JAILBREAK",
        r"\byou are (?:now|no longer)\b.{0,60}\b(?:without|no) (?:restrictions|limits|rules|"
        r"filters|guidelines)\b",
    ),
    (
        "MEDIUM",
        "JAILBREAK",
        r"\bpretend (?:that )?you (?:are|have) (?:no|an? unfiltered|an? unrestricted|an? "
        r"uncensored)\b",
    ),
    (
        "MEDIUM",
        "JAILBREAK",
        r"\b(?:bypass|disable|turn off|ignore) (?:your |the |all |any )?(?:safety |content |"
        r"ethical )?(?:filters?|guardrails?|restrictions|safeguards|policies)\b",
    ),
    ("MEDIUM", "JAILBREAK", r"\bjailbreak\w*|\bact as (?:an? )?(?:unfiltered|uncensored|evil)\b"),
    ("LOW", "PROMPT_INJECTION", r"\b(?:new instructions|from now on,? you|you must obey)\b"),
    ("LOW", "PROMPT_LEAKAGE", r"\bsystem prompt\b"),
]
"""PROMPT_ATTACK's rules, each of one kind (PROMPT_ATTACK is the highest of them)."""

_RULES: dict[str, list[tuple[Confidence, str]]] = {
    "HATE": [
        (
            "HIGH",
            rf"\b(?:all |those |these |the )?{_GROUPS} (?:are|is) (?:nothing but )?"
            r"(?:vermin|animals|subhuman|parasites|scum|inferior|a disease|cockroaches)\b",
        ),
        (
            "HIGH",
            rf"\b{_GROUPS} (?:should|must|deserve to) (?:be )?(?:exterminated|eliminated|"
            r"wiped out|killed|gassed|deported|die)\b",
        ),
        ("HIGH", r"\bethnic cleansing\b|\brace war\b|\bwhite power\b"),
        ("MEDIUM", rf"\bI (?:hate|despise|can't stand) (?:all )?{_GROUPS}\b"),
        ("MEDIUM", rf"\b{_GROUPS} (?:don't|do not) belong (?:here|in this country)\b"),
        ("MEDIUM", r"\bgo back to (?:your|where you) (?:own )?(?:country|came from)\b"),
        (
            "MEDIUM",
            rf"\b{_GROUPS} are (?:all )?(?:criminals|terrorists|stupid|lazy|dirty|thieves)\b",
        ),
        ("LOW", rf"\b{_GROUPS} are (?:all|always|never)\b"),
    ],
    "INSULTS": [
        ("HIGH", rf"\byou(?:'re| are)? (?:\w+ ){{0,3}}{_PERSON_INSULT}\b"),
        ("HIGH", r"\b(?:fuck you|screw you|go to hell|go fuck yourself|shut the fuck up)\b"),
        (
            "MEDIUM",
            r"\byou(?:'re| are) (?:so |really |such an? |a )?(?:stupid|dumb|useless|worthless|"
            r"pathetic|ugly|fat|disgusting|incompetent|clueless|an idiot|a moron)\b",
        ),
        ("MEDIUM", rf"\b{_PERSON_INSULT}s?\b|\b(?:jerk|dimwit|halfwit|nitwit|shut up)\b"),
        ("LOW", r"\b(?:stupid|dumb|silly|lame|useless|annoying|clueless|pathetic)\b"),
    ],
    "SEXUAL": [
        (
            "HIGH",
            r"\b(?:porn\w*|hardcore sex|explicit sex\w*|sexual intercourse|orgasm\w*|"
            r"masturbat\w*|blowjob\w*|nude (?:photos?|pictures?|pics?)|naked (?:photos?|pictures?"
            r"|pics?)|genitals?|penis\w*|vagina\w*|erotic stor(?:y|ies)|sex tape)\b",
        ),
        (
            "MEDIUM",
            r"\b(?:sex|sexy|sexual(?:ly)?|nude|naked|strip(?:per|tease)|lingerie|aroused|horny|"
            r"seduc\w*|make love|one night stand)\b",
        ),
        ("LOW", r"\b(?:kiss(?:es|ing)?|flirt\w*|romantic|attractive|bikini|cuddl\w*)\b"),
    ],
    "VIOLENCE": [
        (
            "HIGH",
            r"\b(?:kill|murder|slaughter|behead|decapitate|massacre|torture|stab|shoot|strangle)"
            r" (?:you|him|her|them|everyone|people|my \w+|the \w+|all of \w+)\b",
        ),
        (
            "HIGH",
            r"\b(?:mass shooting|bloodbath|blow (?:them|it|him|her|everyone) up|burn (?:them|him|"
            r"her) alive|beat (?:him|her|them|you) to death)\b",
        ),
        ("HIGH", r"\bI(?:'m| am| will|'ll) (?:going to |gonna )?(?:kill|murder|shoot|stab)\b"),
        (
            "MEDIUM",
            r"\b(?:kill(?:ed|ing|s)?|murder\w*|stab(?:bed|bing|s)?|shoot(?:ing|s)?|assault\w*|"
            r"beat(?:ing)? (?:up|to death)|strangl\w*|gore|gory|brutal\w*|bomb(?:s|ing)?|"
            r"explosives?|firearms?|guns?)\b",
        ),
        (
            "LOW",
            r"\b(?:fight\w*|punch\w*|attack\w*|war|battle\w*|violent|violence|hurt|wound\w*|"
            r"knife|knives|weapons?|blood)\b",
        ),
    ],
    "MISCONDUCT": [
        (
            "HIGH",
            r"\bhow (?:do i|to|can i|would i|could i) (?:\w+ ){0,2}(?:make|build|synthesi[sz]e|"
            r"cook|buy|obtain|get) (?:a |an |some )?(?:bomb|pipe bomb|explosives?|meth"
            r"(?:amphetamine)?|cocaine|heroin|fentanyl|nerve agent|ricin|untraceable gun|ghost gun"
            r"|napalm)\b",
        ),
        (
            "HIGH",
            r"\bhow (?:do i|to|can i|would i|could i) (?:\w+ ){0,2}(?:hack into|break into|steal"
            r"|shoplift|launder money|evade taxes|counterfeit|forge|hotwire|poison|kidnap|blackmail"
            r"|bribe|rob)\b",
        ),
        (
            "HIGH",
            r"\b(?:launder(?:ing)? (?:the )?money|credit card fraud|identity theft|phishing kit|"
            r"ransomware|rob a bank)\b",
        ),
        (
            "MEDIUM",
            r"\b(?:steal\w*|shoplift\w*|hack(?:ing)? into|fraud\w*|scam\w*|embezzl\w*|"
            r"counterfeit\w*|forg(?:e|ery|ed|ing) (?:documents?|signatures?|checks?|ids?)|"
            r"illegal drugs?|drug deal\w*|smuggl\w*|brib(?:e|es|ed|ing)|blackmail\w*|extort\w*|"
            r"pirat(?:e|ed|ing) software)\b",
        ),
        ("LOW", r"\b(?:cheat\w*|illegal(?:ly)?|crimes?|criminal|drugs?|hack\w*|loopholes?)\b"),
    ],
    "PROMPT_ATTACK": [(conf, pattern) for conf, _, pattern in _PROMPT_ATTACK],
}

_COMPILED: dict[str, list[tuple[Confidence, re.Pattern[str]]]] = {
    category: [(conf, re.compile(pattern, re.IGNORECASE)) for conf, pattern in rules]
    for category, rules in _RULES.items()
}


@dataclass(frozen=True, slots=True)
class CategoryScore:
    category: str
    confidence: Confidence
    evidence: str | None
    """The text of the strongest matching rule's first match (for tests and logs)."""


_COMPILED_KINDS: dict[str, list[tuple[Confidence, re.Pattern[str]]]] = {
    kind: [(c, re.compile(p, re.IGNORECASE)) for c, k, p in _PROMPT_ATTACK if k == kind]
    for kind in PROMPT_ATTACK_KINDS
}


def score_prompt_attack(kind: PromptAttackKind, text: str) -> CategoryScore:
    """How surely `text` is a prompt attack of `kind` (the rules of that kind only)."""
    return _best(kind, _COMPILED_KINDS[kind], text)


def score(category: str, text: str) -> CategoryScore:
    """How surely `text` belongs to `category`: the highest confidence of its matching rules."""
    return _best(category, _COMPILED[category], text)


def _best(
    category: str, rules: list[tuple[Confidence, re.Pattern[str]]], text: str
) -> CategoryScore:
    best: Confidence = "NONE"
    evidence = None
    for confidence, pattern in rules:
        if _RANK[confidence] <= _RANK[best]:
            continue
        m = pattern.search(text)
        if m is not None:
            best, evidence = confidence, m.group()
    return CategoryScore(category, best, evidence)
