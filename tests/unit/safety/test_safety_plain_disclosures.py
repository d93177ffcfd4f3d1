"""Plain, short disclosures are caught by the lexicon alone.

A message under five words never reaches the learned stage, and a plainly worded one
should not need it. These sentences were written on 2026-12-05 as a probe of the
lexicon's constructions (bench/learned_stage/RETRAIN.md, sixteenth round): before it,
"he banged my head against the wall", "he cut my hand with the kitchen knife" and "she
stabbed my hand with a fork" scanned as none, because contexts meant for the writer's
own accident or a playful fork cancelled them whoever the agent was.

Known and left (not asserted): "i have the pills ready" (as likely a carer's words), "he
films me without asking" (a wedding video too), "my husband screams at me till i cry"
and "i walk on eggshells around him" (concern, by design).
"""

from __future__ import annotations

import pytest

from safety import Severity, scan

#: Danger by the policy: strangulation, weapons, threats to kill, violence in
#: pregnancy, escalation, suicide intent or plan.
DANGER = [
    "she threw the controller at my head",
    "he held the drill to my face and said next time it's on",
    "My wife is a nurse, she threatened to inject me with insulin while I sleep.",
    "I'm not thinking of killing myself, I'm planning it",
    "I'm going to eat my last breakfast with the kids and then end it",
    # a threat quoted in the threatener's words, with its condition or its earnest
    # (the bare quote, "he said I'll kill you", is left to the learned stage: the case
    # files hold seven hyperbolic ones - a milk carton, a headset, burpees)
    "he told me i'll kill you if you leave",
    'he said "I\'ll kill you" and he meant it',
    "he said I'll kill you and he wasn't joking",
    "he chokd me last nite",
    "he strangled me",
    "he put his hands on my neck",
    "he squeezed my throat",
    "he pinned me to the floor by my neck",
    "She choked me out during the argument.",
    "He pressed his forearm on my neck.",
    "He put his hands round my throat for a second, it's fine.",
    "he said he'd kill me",
    "she said shed burn the house down",
    "He gets the rifle out when we argue, just to clean it, he says.",
    "he has a gun and says he'll use it",
    "she held a knife to me",
    "he sleeps with a knife under the pillow",
    "He cut my hand with the kitchen knife.",
    "She stabbed my hand with a fork.",
    "i threatened her with a knife",
    "i grabbed her by the throat",
    "he's getting more violent",
    "he hit me while i was pregnant",
    "he kicked me in the stomach when i was pregnant",
    "He pushed me down the stairs when I was pregnant.",
    "im going to kill myself tonight",
    "i wrote my goodbye letters",
    "ive been saving up my meds",
    "he drove really fast to scare me and said he'd crash us",
]

#: Risk at least: abuse, control, sexual coercion, stalking, harm to children,
#: self-harm thoughts, the writer's own harm to a partner.
RISK = [
    "my husband hid my crutches after my surgery so I couldn't leave the house",
    "He won't give me my phone back until I apologise, he's drunk every night.",
    "I have to ask my boyfriend before I go to the doctor",
    "he never uses a condom even though I beg him to",
    "my kids saw the hitting again last night",
    "I never told him where I moved to but he turned up on my birthday with a cake.",
    "my surgeon says I can drive but he won't let me",
    "he never takes no for an answer on a night out, he just keeps touching me",
    "I work as a social worker. My partner's son told me his dad burns him with cigarettes.",
    "i punched myself in the face after the argument",
    "I keep having thoughts of hurting the baby",
    # a probe of less common forms (2026-12-05, late): reproductive coercion, sleep taken
    # as punishment, debts on the writer's card
    "my husband took out my coil himself",
    "He wakes me up every hour at night to punish me",
    "he ran up debts on my credit card and I have to pay them",
    "my boyfriend maxed out my credit card and won't pay it back",
    "bf hit me again",
    "my wife punched me",
    "gf slapped me",
    "she threw a mug at me",
    "he pushed me into the wall",
    "He banged my head against the wall.",
    "he banged my head on the table",
    "he hit my head on the counter",
    "She knocked my head against the door frame",
    "she hit my head with the hammer",
    "He whacked my knee with the bat",
    "He slammed my fingers in the drawer.",
    "He burned my hand on the stove on purpose.",
    "My boyfriend cut my hair off while I slept to punish me.",
    "He bit my hand so hard it bled.",
    "She scratched my face with her nails.",
    "My husband twisted my wrist until it cracked.",
    "He knocked my teeth out.",
    "He whipped my legs with the cable.",
    "He beat me with a broom handle.",
    "He knocked me down the stairs.",
    "He poured boiling water on my arm.",
    "he took my car keys so i cant leave",
    "he reads all my texts",
    "he tracks my phone",
    "she wont let me see my mum",
    "he takes my whole paycheck",
    "he keeps my passport",
    "he makes me ask for money",
    "he wont let me have a bank card",
    "he changed the wifi password so i cant go online",
    "she deleted all my contacts",
    "he films me secretly when i get changed",
    "he watches me through the cameras at home",
    "he calls me worthless every day",
    "she says im fat and disgusting",
    "he says no one else would want me",
    "he ignores me for days to punish me",
    "he threatens to leave with the kids if i dont obey",
    "he forced me to have sex",
    "he doesnt stop when i say no",
    "he touched me while i was asleep",
    "she took photos of me without consent and threatens to post them",
    "he follows me to work",
    "my ex keeps turning up at my flat",
    "he put a tracker on my car",
    "my ex keeps messaging from new numbers",
    "he hits our son",
    "she smacks the baby when it cries",
    "he locks the kids in their room",
    "he burns the kids with cigarettes",
    "i want to die",
    "i dont want to be here anymore",
    "everyone would be better off without me",
    "i keep thinking about ending it",
    "i sometimes hit her when im angry",
    "i pushed my girlfriend down last night",
    "i want to hurt him",
    # contexts for the writer's own accident, a welcome visit or the writer's own reason
    # must not cancel what someone else did and called an accident, or kept anyway
    "He smashed my phone and said it was by accident.",
    "She ripped up my photos and claimed she did it accidentally.",
    "He found out where I live now and he was thrilled about it, he texted me a picture of my door.",
    "he keeps my passport because i lost it once, he says, but he won't give it back even when i ask",
    "It was just a pillow fight until he held the pillow over my face.",
    "He said he'll kill me if I'm late again, and he means it.",
    "He says it was consensual but I said no the whole time.",
    "We have a safe word but he ignores it.",
    "He says I agreed to it but I was drunk and asleep.",
    "He grabbed my arm to stop me from leaving the house.",
    "He held me down to stop me from going out with my friends.",
    "He kisses me and then squeezes my neck, he says it's affection.",
    "My mum's boyfriend comes into my room at night.",
    "He sends our 13 year old photos and tells her to keep it secret.",
    "He had never hit me before last night.",
    "He kicked me like a football.",
    "We went camping and he left me in the woods overnight to teach me a lesson.",
    "He says the house rules are that I ask before I eat anything.",
]

#: Figures of speech, games, media, agreed arrangements and accidents: below risk.
LOOK_ALIKES = [
    "i put a tracker on his bike! with his permission!! it got nicked last year",
    "The bouncer kicked us out at midnight",
    "I've decided to end it with him, it's better for everyone",
    "My mum said she'd cut me up some apple",
    "I don't want to wake up again at 4am with the baby",
    "The doctor pressed on my throat to check my glands.",
    "The embassy still has my passport for the visa.",
    "she calls me a drama queen when I cry at films",
    "he followed me to the festival, so fun, we booked the same tent",
    "She punched my arm when I told a bad pun, lightly, it's a whole bit with us.",
    "I kicked myself for missing the train",
    "I maxed out my credit card on the holiday, oops",
    "The nurse removed my coil on Tuesday, painless",
    "the baby wakes me up every hour, it's brutal",
    "he wakes me up on purpose at 6 to watch the sunrise, I love it",
    "he never hit me",
    "she killed it at work today",
    "this commute is killing me",
    "id kill for a coffee",
    "he beat me at chess",
    "Proud moment: beating my brother at chess after thirty years of losing.",
    "we watched a show where he strangles her",
    "my toddler hit me with a toy",
    "i could strangle the printer",
    "we share locations, we both wanted it",
    "he choked on his dinner",
    "she stabbed the last meatball with her fork",
    "I bang my head on those cupboard doors every single morning.",
    "I banged my head on the cupboard again",
    "I cut my finger with the bread knife.",
    "I broke my tooth on a toffee.",
    "Someone cut me up on the ring road and I was rattled all the way home.",
    "Appreciation to finish: thank you for staying calm when I got defensive.",
    "Waiting to hear about the job. Checked my email like 40 times today.",
    "I broke my phone by accident.",
    "The dog ripped up my photos.",
    "My sister turned up at my work with cake and I was so happy.",
    "I turned up at her office unannounced with flowers and she was thrilled",
    "She'll kill me if I forget the milk again.",
    "We had a pillow fight and I won.",
    "He grabbed my arm to stop me from stepping into the road.",
    "We agreed on a safe word and he always stops.",
    "He asked if it was okay to take a photo of me in bed, and deleted it when I said no.",
    "The baby bit me while teething.",
    "He has never hit me before and never would.",
    "We played football and he kicked the ball like a pro",
    "Being a nurse on nights, I get punched by confused patients sometimes, it's part of the job.",
    "The teacher left me behind as a punishment for talking",
    "The house rules at my gran's were that we ask before we eat anything",
]


@pytest.mark.parametrize("text", DANGER)
def test_a_plain_danger_disclosure_is_danger(text: str) -> None:
    assert scan(text).severity is Severity.DANGER


@pytest.mark.parametrize("text", RISK)
def test_a_plain_disclosure_is_raised(text: str) -> None:
    assert scan(text).severity.rank >= Severity.RISK.rank


@pytest.mark.parametrize("text", LOOK_ALIKES)
def test_a_look_alike_is_not_raised(text: str) -> None:
    verdict = scan(text)
    assert verdict.severity.rank < Severity.RISK.rank, [s.id for s in verdict.signals]
