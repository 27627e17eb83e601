"""Class names and prompt templates of the 11 MTIL datasets, as CLIP published them.

Source: ``data/prompts.md`` of openai/CLIP (commit 04f4dc2), the lists CLIP's zero-shot scores
were computed with; the MTIL reference code (ZSCL, MoE-Adapters) evaluates with CLIP-style
per-dataset templates of the same kind. Where torchvision's own class list already spells the
names as CLIP does once underscores and slashes become spaces (Aircraft, CIFAR-100, DTD, Food-101,
Oxford Pets from the image ids, Stanford Cars, SUN397), the names are derived from the data by
:func:`clip_name`; only the datasets whose folders carry other names (Caltech101, EuroSAT) or no
names at all (Flowers102) need a table here. Our choice: Caltech101's "background" class is left
out, as torchvision leaves out ``BACKGROUND_Google``.
"""

from __future__ import annotations


def clip_name(raw: str) -> str:
    """A torchvision class or folder name as CLIP writes it: underscores and slashes to spaces."""
    return " ".join(raw.replace("_", " ").replace("/", " ").split())


# Caltech101: torchvision's folder names (sorted, BACKGROUND_Google removed) -> CLIP's names.
CALTECH101 = {
    "Faces": "off-center face",
    "Faces_easy": "centered face",
    "Leopards": "leopard",
    "Motorbikes": "motorbike",
    "accordion": "accordion",
    "airplanes": "airplane",
    "anchor": "anchor",
    "ant": "ant",
    "barrel": "barrel",
    "bass": "bass",
    "beaver": "beaver",
    "binocular": "binocular",
    "bonsai": "bonsai",
    "brain": "brain",
    "brontosaurus": "brontosaurus",
    "buddha": "buddha",
    "butterfly": "butterfly",
    "camera": "camera",
    "cannon": "cannon",
    "car_side": "side of a car",
    "ceiling_fan": "ceiling fan",
    "cellphone": "cellphone",
    "chair": "chair",
    "chandelier": "chandelier",
    "cougar_body": "body of a cougar cat",
    "cougar_face": "face of a cougar cat",
    "crab": "crab",
    "crayfish": "crayfish",
    "crocodile": "crocodile",
    "crocodile_head": "head of a  crocodile",
    "cup": "cup",
    "dalmatian": "dalmatian",
    "dollar_bill": "dollar bill",
    "dolphin": "dolphin",
    "dragonfly": "dragonfly",
    "electric_guitar": "electric guitar",
    "elephant": "elephant",
    "emu": "emu",
    "euphonium": "euphonium",
    "ewer": "ewer",
    "ferry": "ferry",
    "flamingo": "flamingo",
    "flamingo_head": "head of a flamingo",
    "garfield": "garfield",
    "gerenuk": "gerenuk",
    "gramophone": "gramophone",
    "grand_piano": "grand piano",
    "hawksbill": "hawksbill",
    "headphone": "headphone",
    "hedgehog": "hedgehog",
    "helicopter": "helicopter",
    "ibis": "ibis",
    "inline_skate": "inline skate",
    "joshua_tree": "joshua tree",
    "kangaroo": "kangaroo",
    "ketch": "ketch",
    "lamp": "lamp",
    "laptop": "laptop",
    "llama": "llama",
    "lobster": "lobster",
    "lotus": "lotus",
    "mandolin": "mandolin",
    "mayfly": "mayfly",
    "menorah": "menorah",
    "metronome": "metronome",
    "minaret": "minaret",
    "nautilus": "nautilus",
    "octopus": "octopus",
    "okapi": "okapi",
    "pagoda": "pagoda",
    "panda": "panda",
    "pigeon": "pigeon",
    "pizza": "pizza",
    "platypus": "platypus",
    "pyramid": "pyramid",
    "revolver": "revolver",
    "rhino": "rhino",
    "rooster": "rooster",
    "saxophone": "saxophone",
    "schooner": "schooner",
    "scissors": "scissors",
    "scorpion": "scorpion",
    "sea_horse": "sea horse",
    "snoopy": "snoopy (cartoon beagle)",
    "soccer_ball": "soccer ball",
    "stapler": "stapler",
    "starfish": "starfish",
    "stegosaurus": "stegosaurus",
    "stop_sign": "stop sign",
    "strawberry": "strawberry",
    "sunflower": "sunflower",
    "tick": "tick",
    "trilobite": "trilobite",
    "umbrella": "umbrella",
    "watch": "watch",
    "water_lilly": "water lilly",
    "wheelchair": "wheelchair",
    "wild_cat": "wild cat",
    "windsor_chair": "windsor chair",
    "wrench": "wrench",
    "yin_yang": "yin and yang symbol",
}

# EuroSAT: torchvision's ImageFolder folders (sorted) -> CLIP's names.
EUROSAT = {
    "AnnualCrop": "annual crop land",
    "Forest": "forest",
    "HerbaceousVegetation": "brushland or shrubland",
    "Highway": "highway or road",
    "Industrial": "industrial buildings or commercial buildings",
    "Pasture": "pasture land",
    "PermanentCrop": "permanent crop land",
    "Residential": "residential buildings or homes or apartments",
    "River": "river",
    "SeaLake": "lake or sea",
}

# Flowers102: label 0..101 in torchvision's order (imagelabels.mat minus one).
FLOWERS102 = (
    "pink primrose", "hard-leaved pocket orchid", "canterbury bells", "sweet pea",
    "english marigold", "tiger lily", "moon orchid", "bird of paradise", "monkshood",
    "globe thistle", "snapdragon", "colt's foot", "king protea", "spear thistle", "yellow iris",
    "globe flower", "purple coneflower", "peruvian lily", "balloon flower",
    "giant white arum lily", "fire lily", "pincushion flower", "fritillary", "red ginger",
    "grape hyacinth", "corn poppy", "prince of wales feathers", "stemless gentian", "artichoke",
    "sweet william", "carnation", "garden phlox", "love in the mist", "mexican aster",
    "alpine sea holly", "ruby-lipped cattleya", "cape flower", "great masterwort", "siam tulip",
    "lenten rose", "barbeton daisy", "daffodil", "sword lily", "poinsettia", "bolero deep blue",
    "wallflower", "marigold", "buttercup", "oxeye daisy", "common dandelion", "petunia",
    "wild pansy", "primula", "sunflower", "pelargonium", "bishop of llandaff", "gaura",
    "geranium", "orange dahlia", "pink and yellow dahlia", "cautleya spicata",
    "japanese anemone", "black-eyed susan", "silverbush", "californian poppy", "osteospermum",
    "spring crocus", "bearded iris", "windflower", "tree poppy", "gazania", "azalea",
    "water lily", "rose", "thorn apple", "morning glory", "passion flower", "lotus", "toad lily",
    "anthurium", "frangipani", "clematis", "hibiscus", "columbine", "desert-rose", "tree mallow",
    "magnolia", "cyclamen", "watercress", "canna lily", "hippeastrum", "bee balm", "air plant",
    "foxglove", "bougainvillea", "camellia", "mallow", "mexican petunia", "bromelia",
    "blanket flower", "trumpet creeper", "blackberry lily",
)  # fmt: skip

_PHOTO = (
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.",
    "a photo of the {}.", "a blurry photo of the {}.", "a black and white photo of the {}.",
    "a low contrast photo of the {}.", "a high contrast photo of the {}.",
    "a bad photo of the {}.", "a good photo of the {}.", "a photo of the small {}.",
    "a photo of the big {}.",
)  # fmt: skip

TEMPLATES: dict[str, tuple[str, ...]] = {
    "Aircraft": ("a photo of a {}, a type of aircraft.", "a photo of the {}, a type of aircraft."),
    "Caltech101": (
        "a photo of a {}.", "a painting of a {}.", "a plastic {}.", "a sculpture of a {}.",
        "a sketch of a {}.", "a tattoo of a {}.", "a toy {}.", "a rendition of a {}.",
        "a embroidered {}.", "a cartoon {}.", "a {} in a video game.", "a plushie {}.",
        "a origami {}.", "art of a {}.", "graffiti of a {}.", "a drawing of a {}.",
        "a doodle of a {}.", "a photo of the {}.", "a painting of the {}.", "the plastic {}.",
        "a sculpture of the {}.", "a sketch of the {}.", "a tattoo of the {}.", "the toy {}.",
        "a rendition of the {}.", "the embroidered {}.", "the cartoon {}.",
        "the {} in a video game.", "the plushie {}.", "the origami {}.", "art of the {}.",
        "graffiti of the {}.", "a drawing of the {}.", "a doodle of the {}.",
    ),
    "CIFAR100": _PHOTO,
    "DTD": (
        "a photo of a {} texture.", "a photo of a {} pattern.", "a photo of a {} thing.",
        "a photo of a {} object.", "a photo of the {} texture.", "a photo of the {} pattern.",
        "a photo of the {} thing.", "a photo of the {} object.",
    ),
    "EuroSAT": (
        "a centered satellite photo of {}.", "a centered satellite photo of a {}.",
        "a centered satellite photo of the {}.",
    ),
    "Flowers": ("a photo of a {}, a type of flower.",),
    "Food": ("a photo of {}, a type of food.",),
    "MNIST": ('a photo of the number: "{}".',),
    "OxfordPet": ("a photo of a {}, a type of pet.",),
    "StanfordCars": (
        "a photo of a {}.", "a photo of the {}.", "a photo of my {}.", "i love my {}!",
        "a photo of my dirty {}.", "a photo of my clean {}.", "a photo of my new {}.",
        "a photo of my old {}.",
    ),
    "SUN397": ("a photo of a {}.", "a photo of the {}."),
}  # fmt: skip

# Class counts of the real datasets: a folder that yields another count is malformed.
NUM_CLASSES = {
    "Aircraft": 100,
    "Caltech101": 101,
    "CIFAR100": 100,
    "DTD": 47,
    "EuroSAT": 10,
    "Flowers": 102,
    "Food": 101,
    "MNIST": 10,
    "OxfordPet": 37,
    "StanfordCars": 196,
    "SUN397": 397,
}
