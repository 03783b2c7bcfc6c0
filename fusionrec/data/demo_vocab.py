"""Words of the demo shop (:mod:`fusionrec.data.demo`): categories, materials, colours, shapes,
and the item texts written from them.

Text traits (category, material) are written with synonyms and varied templates; image traits
(colour, shape) must never appear in a text (:data:`FORBIDDEN_TEXT_WORDS`).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

# category -> (synonyms used in titles/descriptions, usage sentences that hint the category
# without necessarily naming it)
CATEGORIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lamp": (
        ("lamp", "desk lamp", "table lamp", "reading lamp", "floor lamp", "bedside lamp"),
        ("Casts a warm glow for late-night reading.", "Brightens a dim corner of the living room.",
         "The dimmer lets you set the mood after dinner.", "Takes a standard E27 bulb."),
    ),
    "mug": (
        ("mug", "coffee mug", "tea cup", "cup", "travel mug", "espresso cup"),
        ("Keeps your morning coffee hot a little longer.", "Holds a generous 350 ml of tea.",
         "Dishwasher and microwave safe for the daily brew.", "The handle fits four fingers comfortably."),
    ),
    "jacket": (
        ("jacket", "coat", "parka", "windbreaker", "bomber jacket", "rain jacket"),
        ("Keeps the wind out on chilly autumn walks.", "Cut for layering over a sweater.",
         "Two zipped pockets keep your keys and phone safe.", "Runs true to size; check the size chart."),
    ),
    "chair": (
        ("chair", "armchair", "dining chair", "lounge chair", "stool", "accent chair"),
        ("Supports your back through long dinners.", "The seat height suits most tables and desks.",
         "Stackable, so it tucks away after guests leave.", "Holds up to 120 kg."),
    ),
    "backpack": (
        ("backpack", "rucksack", "daypack", "knapsack", "laptop bag", "hiking pack"),
        ("Fits a 15-inch laptop and a water bottle.", "Padded straps make the commute easier.",
         "A 25-litre main compartment for weekend trips.", "Carry-on friendly for most airlines."),
    ),
    "vase": (
        ("vase", "flower vase", "bud vase", "vessel", "planter", "centrepiece vase"),
        ("Made for a fresh bunch of tulips.", "Looks just as good empty on a shelf.",
         "Holds dried flowers and pampas grass.", "A watertight interior for cut stems."),
    ),
    "sneakers": (
        ("sneakers", "trainers", "running shoes", "shoes", "low-top sneakers", "walking shoes"),
        ("A cushioned sole for all-day walking.", "Laces up snugly without pinching.",
         "Grippy tread for wet pavements.", "Half sizes available."),
    ),
    "blanket": (
        ("blanket", "throw", "quilt", "bedspread", "comforter", "sofa throw"),
        ("Perfect for curling up on the sofa.", "Warm enough for winter nights in bed.",
         "Machine washable at 30 degrees.", "Large enough to cover a double bed."),
    ),
}
# material -> (adjectives/nouns used for it, sentences about it with a {m} slot)
MATERIALS: dict[str, tuple[str, ...]] = {
    "wood": ("wooden", "oak", "solid wood", "beech", "timber", "ash wood"),
    "metal": ("steel", "stainless steel", "aluminium", "metal", "brushed metal", "wrought iron"),
    "cotton": ("cotton", "organic cotton", "soft cotton", "cotton-blend", "brushed cotton", "cotton canvas"),
    "ceramic": ("ceramic", "stoneware", "porcelain", "glazed ceramic", "earthenware", "terracotta"),
    "leather": ("leather", "full-grain leather", "suede", "vegan leather", "soft leather", "nubuck"),
    "glass": ("glass", "borosilicate glass", "frosted glass", "hand-blown glass", "tempered glass", "crystal glass"),
}
MATERIAL_SENTENCES = (
    "Made from {m} for everyday durability.",
    "The {m} finish ages beautifully.",
    "Crafted in {m} that feels solid in the hand.",
    "We chose {m} because it lasts.",
    "Its {m} body is easy to care for.",
)
# material price factors: why price is informative but not a give-away of the text traits
MATERIAL_PRICE = {"wood": 1.3, "metal": 1.1, "cotton": 0.8, "ceramic": 0.9, "leather": 1.6, "glass": 1.0}
CATEGORY_PRICE = {"lamp": 45, "mug": 14, "jacket": 90, "chair": 120, "backpack": 60, "vase": 28,
                  "sneakers": 75, "blanket": 50}

# colour -> HSV hue in degrees; 6 hues 60 degrees apart. Closer hues (8 colours with red/pink
# and blue/purple 35-50 degrees apart) survived JPEG and tinting in the pixels, but
# pretrained ImageNet features confused them (EfficientNet-Lite0 kNN colour agreement 0.50).
COLOURS: dict[str, float] = {
    "red": 0.0, "yellow": 60.0, "green": 120.0, "cyan": 180.0, "blue": 240.0, "magenta": 300.0,
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

TITLE_ADJECTIVES = ("Classic", "Modern", "Minimalist", "Rustic", "Compact", "Premium", "Everyday",
                    "Vintage-inspired", "Scandinavian", "Handcrafted", "Essential", "Signature")
OPENERS = (
    "Meet the {adj} {mat} {cat}.",
    "This {adj} {cat} is made from {mat}.",
    "{A_adj} {cat} in {mat}, designed for daily use.",
    "Our {adj} {cat}, made in {mat}.",
    "Looking for {a_adj} {cat}? This one is {mat} through and through.",
)
FILLERS = (
    "Ships within two business days.", "A thoughtful gift for friends and family.",
    "Backed by a two-year warranty.", "Easy to clean and care for.", "Designed in Lisbon, made to last.",
    "Free returns within 30 days.", "Customers love the quality for the price.",
    "Packed in recycled cardboard.", "Part of our new seasonal collection.", "Limited stock available.",
)
DESCRIPTORS = ("lightweight", "sturdy", "elegant", "practical", "cosy", "timeless", "sleek", "understated")
BRANDS = ("Nordhaven", "Kivu", "Lumio", "Tessa & Co", "Ostrander", "Maple Lane", "Fjelda", "Brisk",
          "Halden", "Oaku", "Verano", "Pellworth", "Marlo", "Sundry Goods", "Atelier Nine", "Wexley",
          "Corvin", "Lindqvist", "Pavo", "Hearthly", "Tamsin", "Ridge & Vale", "Oben", "Quillon")

FORBIDDEN_TEXT_WORDS: frozenset[str] = frozenset(
    list(COLOURS) + list(SHAPES) + [
        # colour words and common shades/synonyms
        "orange", "pink", "purple", "colour", "color", "colours", "colors", "coloured", "colored", "colourful", "colorful",
        "crimson", "scarlet", "maroon", "amber", "gold", "golden", "lime", "olive", "emerald", "teal",
        "turquoise", "aqua", "navy", "azure", "cobalt", "indigo", "violet", "lilac", "lavender",
        "magenta", "fuchsia", "rose", "black", "white", "grey", "gray", "brown", "beige", "silver",
        "cream", "ivory", "tan", "charcoal", "hue", "tint", "shade", "reds", "blues", "greens",
        # shape words and synonyms
        "shape", "shaped", "round", "circular", "circles", "squares", "triangular", "triangles", "stars",
        "starry", "crosses", "rings", "oval", "hexagon", "hexagonal", "diamond", "rectangle",
        "rectangular", "sphere", "spherical", "cube", "cubic", "polygon", "plus", "x-shaped",
    ]
)
"""Words the item text must never contain: they would leak the image-only traits."""



def demo_text(items_row: Mapping[str, Any]) -> str:
    """The text an encoder should embed for one item row: title and description joined."""
    return f"{items_row['title']}. {items_row['description']}"


def write_text(cat: str, mat: str, brand: str, rng: np.random.Generator) -> tuple[str, str]:
    """``(title, description)`` of one item of category ``cat`` in material ``mat``."""
    cat_syns, cat_sentences = CATEGORIES[cat]
    mat_syns = MATERIALS[mat]

    def pick(options):
        return options[int(rng.integers(len(options)))]

    adj = pick(TITLE_ADJECTIVES)
    title_cat = pick(cat_syns)
    title_mat = pick(mat_syns)
    title = f"{brand} {adj} {_titlecase(title_mat)} {_titlecase(title_cat)}"
    if rng.random() < 0.3:  # some titles leave the material to the description
        title = f"{brand} {adj} {_titlecase(title_cat)}"
    desc_adj = pick(DESCRIPTORS)
    a_adj = ("an " if desc_adj[0] in "aeiou" else "a ") + desc_adj
    # One product noun and material phrase per item (as a real listing would), varied across items.
    opener = pick(OPENERS).format(adj=desc_adj, a_adj=a_adj, A_adj=a_adj.capitalize(),
                                  mat=title_mat, cat=title_cat)
    sentences = [opener]
    # 1-2 category cues and 0-1 material sentences, then 1-2 neutral fillers, shuffled after
    # the opener so position carries no information.
    body = list(rng.choice(cat_sentences, size=int(rng.integers(1, 3)), replace=False))
    if rng.random() < 0.6:
        body.append(pick(MATERIAL_SENTENCES).format(m=title_mat))
    body += list(rng.choice(FILLERS, size=int(rng.integers(1, 3)), replace=False))
    order = rng.permutation(len(body))
    sentences += [str(body[k]) for k in order]
    return title, " ".join(sentences)


def _titlecase(phrase: str) -> str:
    # str.title() would turn "15-inch" or "cotton-blend" into "Cotton-Blend"; capitalise words only.
    return " ".join(w[:1].upper() + w[1:] for w in phrase.split(" "))


def _words(text: str) -> set[str]:
    """Lower-case word tokens (hyphenated words also split), used to audit the text."""
    toks = re.findall(r"[a-z]+(?:-[a-z]+)*", text.lower())
    out = set(toks)
    for t in toks:
        out.update(t.split("-"))
    return out
