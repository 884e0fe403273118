"""Chat-like text for memory measurements: varied English and Spanish sentences.

Compression ratios measured on repeated filler text ("the quick brown fox ...")
or random letters say nothing about a chat server: the first compresses far
too well, the second not at all. These sentences read like the two sides of a
companion chat. A conversation draws its sentences without replacement, so up to
about 33 turns no sentence repeats inside one conversation and a ratio comes
from the language's own redundancy, not from copies.
"""

from __future__ import annotations

import random

__all__ = ["ASSISTANT", "USER", "conversation"]

USER = [
    "Hi! I just got back from work and I'm exhausted.",
    "Do you remember what I told you about my sister's wedding?",
    "I tried that pasta recipe you suggested, it was amazing.",
    "Honestly I don't know if I should take the new job offer.",
    "My cat knocked over the plant again this morning.",
    "Can you help me plan a trip to Lisbon in October?",
    "I've been sleeping badly all week, any ideas?",
    "What's a good book to read on a long train ride?",
    "I finally finished the marathon training plan!",
    "My boss keeps scheduling meetings at 8 in the morning.",
    "I want to learn to play the guitar but I have no time.",
    "Tell me something that will cheer me up.",
    "We had a huge argument about the holidays yesterday.",
    "Is it weird that I talk to my plants?",
    "I'm thinking about adopting a second dog.",
    "The rain hasn't stopped for three days here.",
    "How do I tell my friend that I can't lend her money again?",
    "I passed my driving test on the second try!",
    "Could you explain how compound interest works, simply?",
    "I miss the summer already, it's so dark at five.",
    "My grandmother turns ninety next month.",
    "I burned the rice while we were talking, oops.",
    "What should I cook for six people on Saturday?",
    "I keep procrastinating on my thesis chapter.",
    "Do you think people can really change?",
    "I started journaling like you said, it helps a bit.",
    "The neighbours are renovating and the noise is unbearable.",
    "Recommend me a podcast about history, please.",
    "I feel like nobody at the office listens to my ideas.",
    "We're going camping this weekend if the weather holds.",
    "Hola, ¿cómo estás hoy?",
    "Estoy muy cansado, trabajé doce horas seguidas.",
    "¿Te acuerdas de la receta de tortilla que me diste?",
    "Mañana tengo una entrevista y estoy nerviosísima.",
    "Mi hermano se muda a Valencia la semana que viene.",
    "No sé qué regalarle a mi madre por su cumpleaños.",
    "¿Qué película me recomiendas para ver esta noche?",
    "Hoy por fin hice ejercicio después de un mes.",
    "Me encanta hablar contigo, siempre me escuchas.",
    "El tráfico en Madrid hoy ha sido una pesadilla.",
    "Quiero aprender a bailar salsa este verano.",
    "Mi perro se comió mis zapatillas nuevas.",
    "¿Crees que debería volver a estudiar?",
    "Llevo toda la tarde intentando arreglar la bici.",
    "Ayer vi a una amiga del colegio después de diez años.",
    "Estoy pensando en cambiarme de piso.",
    "¿Me ayudas a escribir un correo formal a mi casero?",
    "Hace un calor horrible y no tengo aire acondicionado.",
    "Se me olvidó otra vez la cita con el dentista.",
    "¿Cuál es tu estación del año favorita?",
]

ASSISTANT = [
    "Welcome back! That sounds like a long day, do you want to talk about it?",
    "Of course I remember, you were worried about the speech you had to give.",
    "I'm so glad it turned out well, did you add the extra garlic?",
    "That's a big decision; what matters most to you right now, money or growth?",
    "Cats have a talent for finding the one thing you care about most.",
    "Lisbon in October is lovely: mild weather, fewer crowds and great food.",
    "A fixed bedtime and no screens for the last hour can make a real difference.",
    "A long novel works well on trains; something you can sink into for hours.",
    "Congratulations! All those early mornings finally paid off.",
    "Early meetings are hard; maybe you could suggest a later slot once a week.",
    "Even ten minutes a day is enough to learn your first chords.",
    "Here's one: sea otters hold hands while they sleep so they don't drift apart.",
    "Family arguments around the holidays are very common, you're not alone in this.",
    "Not weird at all, many people say it helps them relax.",
    "A second dog can be great company for the first, if they get along.",
    "Three days of rain is a lot; maybe it's a good excuse for a cozy film night.",
    "You can be kind and firm at the same time; say no without over-explaining.",
    "Well done! The second try counts just as much as the first.",
    "Compound interest means you earn interest on your interest, so it grows faster over time.",
    "The short days are tough; getting some daylight in the morning helps many people.",
    "Ninety years! Are you planning something special for her?",
    "Burnt rice happens to everyone, at least the conversation was worth it.",
    "For six people, a big tray of roasted vegetables and a slow-cooked stew is easy to scale.",
    "Try writing for twenty-five minutes with a timer, then take a short break.",
    "I think people change when they really want to, and it usually takes time.",
    "I'm happy it helps; writing things down makes them feel smaller sometimes.",
    "That sounds exhausting; earplugs or white noise might get you through it.",
    "There are some excellent ones about ancient Rome and the history of everyday objects.",
    "That feels frustrating; would it help to write your ideas down before the meeting?",
    "Camping sounds fun, don't forget a warm sleeping bag, nights get cold.",
    "¡Hola! Estoy aquí, cuéntame qué tal te ha ido el día.",
    "Doce horas es muchísimo, deberías descansar y cenar algo rico.",
    "Claro que me acuerdo, la de patatas con un poco de cebolla, ¿te salió bien?",
    "Es normal estar nerviosa; prepara tres ejemplos de tu experiencia y respira hondo.",
    "¡Qué cambio tan grande para tu hermano! Valencia es una ciudad preciosa.",
    "Podrías regalarle una experiencia, como una comida juntas o una escapada.",
    "Si te apetece reír, una comedia ligera; si quieres pensar, un buen drama.",
    "¡Enhorabuena! Lo más difícil es volver a empezar, y ya lo has hecho.",
    "A mí también me gusta mucho hablar contigo, gracias por confiar en mí.",
    "El tráfico cansa muchísimo; ¿has probado a ir en metro algún día?",
    "La salsa es muy divertida, y se aprende rápido con un buen profesor.",
    "Vaya, los perros jóvenes muerden todo lo que encuentran, ten paciencia.",
    "Nunca es tarde para estudiar, sobre todo si es algo que te ilusiona.",
    "Arreglar una bici tiene su truco; revisa primero la cadena y los frenos.",
    "¡Qué bonito reencuentro! Seguro que tuvisteis mucho de qué hablar.",
    "Cambiar de piso es una aventura; piensa qué barrio te haría más feliz.",
    "Claro, empecemos con un saludo formal y explica el problema con calma.",
    "Con este calor, cierra las persianas por la mañana y bebe mucha agua.",
    "No te preocupes, llama mañana temprano y pide otra cita.",
    "Me gusta el otoño, por los colores de los árboles y las tardes tranquilas.",
]


def conversation(turns: int, seed: int) -> list[tuple[str, str]]:
    """``turns`` user/assistant exchanges as (role, content) pairs, the same for a seed:
    a user message of one sentence, a reply of one or two. No sentence comes twice
    before the pools run out: user sentences after 50 turns, replies after about 33."""
    rng = random.Random(seed)
    users: list[str] = []
    replies: list[str] = []
    out: list[tuple[str, str]] = []
    for _ in range(turns):
        if not users:
            users = rng.sample(USER, len(USER))
        if len(replies) < 2:
            replies += rng.sample(ASSISTANT, len(ASSISTANT))
        out.append(("user", users.pop()))
        take = rng.choice((1, 2))
        out.append(("assistant", " ".join(replies.pop() for _ in range(take))))
    return out
