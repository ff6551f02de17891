"""What users read about the model families, in each language the extension speaks: which models are supported,
what `layers = auto` takes on each family, the cfg each is usually sampled at.

The facts are the families' own, stated once in each family class (short_name, variants, also, since_comfyui,
default_layers, typical_cfg, video: families/base.py); the words around them are PHRASES', one small table per
language. The nodes' tooltips and the unsupported-model error are built here at run time from the families this
host has (FAMILIES); the translations (locales/*/nodeDefs.json) and the help pages (web/docs/, between
<!-- families:KIND --> and <!-- /families -->) are written by scripts/build_user_text.py from every family the
extension supports on the newest host (ALL_FAMILIES), and tests/host/test_family_names.py fails when they are
out of date.

A family is read through its attributes only (a class or an instance): this module imports no family.
"""

import re

from ...ca_core.layers import ALL_BLOCKS

# The words around the family names. "(과/와)" and "(은/는)" are Korean particles, chosen by the sound the name
# before them ends in (korean_particles).
PHRASES = {
    "en": {
        "list": ", ", "and": "{} and {}", "or": "{} or {}",
        "named": "{name} ({notes})", "notes": "; ", "also": "and {}", "also_joined_by": None,
        "since": "ComfyUI {} and newer",
        "last": "the last {}", "numbers": ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                                          "ten"), "number": "{}",
        "every": "every joint block", "layers": "{what} on {names}", "layers_between": "; ",
        "cfg": "{value} for {names}", "cfg_about": "about {value} for {names}", "cfg_between": ", ",
        "model_tooltip": "A {families} model.",
        "model_tooltip_copy": "A {families} model; the concept stream is added to a copy.",
        "layers_tooltip": "Joint blocks whose scores are averaged: auto (the family's default: {defaults}), all, "
                          "a range such as 15-18, or a list such as 15,16,-1.",
        "cfg_tooltip": "Classifier-free guidance scale ({values}).",
        "advanced": "",  # the English schema says it with advanced=True (nodes/schema_options.py)
    },
    "zh": {
        "list": "、", "and": "{} 和 {}", "or": "{} 或 {}",
        "named": "{name}（{notes}）", "notes": "；", "also": "含 {}", "also_joined_by": "and",
        "since": "ComfyUI {} 及更新版本",
        "last": "最后{}个", "numbers": ("一", "两", "三", "四", "五", "六", "七", "八", "九", "十"), "number": " {} ",
        "every": "所有联合块", "layers": "{names} 为{what}", "layers_between": "；",
        "cfg": "{names} 为 {value}", "cfg_about": "{names} 约为 {value}", "cfg_between": "，",
        "model_tooltip": "{families} 模型。",
        "model_tooltip_copy": "{families} 模型；概念流加在模型的副本上。",
        "layers_tooltip": "对哪些联合块的得分取平均：auto（该模型系列的默认值：{defaults}）、all、范围如 15-18，"
                          "或列表如 15,16,-1。",
        "cfg_tooltip": "无分类器引导（CFG）强度（{values}）。",
        "advanced": "高级选项。",
    },
    "ja": {
        "list": "、", "and": "{} と {}", "or": "{} または {}",
        "named": "{name}（{notes}）", "notes": "。", "also": "{} を含む", "also_joined_by": "and",
        "since": "ComfyUI {} 以降",
        "last": "最後の {}", "numbers": tuple(f"{n} つ" for n in range(1, 10)), "number": "{} 個",
        "every": "すべてのジョイントブロック", "layers": "{names} では{what}", "layers_between": "。",
        "cfg": "{names} は {value}", "cfg_about": "{names} は約 {value}", "cfg_between": "、",
        "model_tooltip": "{families} のモデル。",
        "model_tooltip_copy": "{families} のモデル。コンセプトストリームはモデルのコピーに追加されます。",
        "layers_tooltip": "スコアを平均するジョイントブロック：auto（モデルファミリーの既定値：{defaults}）、all、"
                          "15-18 のような範囲、または 15,16,-1 のようなリスト。",
        "cfg_tooltip": "Classifier-Free Guidance のスケール（{values}）。",
        "advanced": "詳細設定。",
    },
    "ko": {
        "list": ", ", "and": "{}(과/와) {}", "or": "{} 또는 {}",
        "named": "{name}({notes})", "notes": ". ", "also": "{} 포함", "also_joined_by": None,
        "since": "ComfyUI {} 이상",
        "last": "마지막 {}개", "numbers": (), "number": "{}",
        "every": "모든 조인트 블록", "layers": "{names}(은/는) {what}", "layers_between": ". ",
        "cfg": "{names}(은/는) {value}", "cfg_about": "{names}(은/는) 약 {value}", "cfg_between": ", ",
        "model_tooltip": "{families} 모델입니다.",
        "model_tooltip_copy": "{families} 모델입니다. 개념 스트림은 모델의 복사본에 추가됩니다.",
        "layers_tooltip": "점수를 평균할 조인트 블록입니다: auto(모델 계열의 기본값: {defaults}), all, 15-18 같은 범위, "
                          "또는 15,16,-1 같은 목록.",
        "cfg_tooltip": "Classifier-Free Guidance 스케일입니다({values}).",
        "advanced": "고급 옵션. ",
    },
}
LANGUAGES = tuple(PHRASES)


def join(items, language: str = "en", conjunction: str | None = None) -> str:
    """Items as a list in the language: "A, B or C" (conjunction "or"), "A, B and C" ("and"), "A, B, C" (None:
    the sentence around it ends the list)."""
    items = list(items)
    words = PHRASES[language]
    if conjunction is None or len(items) < 2:
        return words["list"].join(items)
    return finish(words[conjunction].format(words["list"].join(items[:-1]), items[-1]), language)


def display_name(family, language: str = "en", since: bool = False) -> str:
    """What users call the family: "Flux.1 (dev, schnell, Kontext)", "Qwen-Image (and Edit)"; since: with the
    first ComfyUI release that has it, "CogVideoX (ComfyUI 0.33 and newer)" (the help pages, for every host)."""
    words = PHRASES[language]
    notes = []
    if family.variants:
        notes.append(join(family.variants, language))
    if family.also:
        notes.append(words["also"].format(join(family.also, language, words["also_joined_by"])))
    if since and family.since_comfyui:
        notes.append(words["since"].format(family.since_comfyui))
    name = words["named"].format(name=family.short_name, notes=words["notes"].join(notes)) if notes else family.short_name
    return finish(name, language)


def family_list(families, language: str = "en", conjunction: str | None = "or", short: bool = False,
                since: bool = False) -> str:
    """The families as a list: their display names, or only their short names ("Flux.1, Flux.2, ... or CogVideoX")."""
    names = [family.short_name if short else display_name(family, language, since) for family in families]
    return finish(join(names, language, conjunction), language)


def supported(families) -> str:
    """The unsupported-model error's list: "Flux.1 (dev, schnell, Kontext); Flux.2 (dev, klein); ..."."""
    return "; ".join(display_name(family) for family in families)


def model_tooltip(families, language: str = "en", copy: bool = True) -> str:
    """The `model` input's tooltip; copy: the node adds the concept stream to a copy of the model."""
    text = PHRASES[language]["model_tooltip_copy" if copy else "model_tooltip"]
    return finish(text.format(families=family_list(families, language)), language)


def grouped(families, key) -> list[tuple[object, list[str]]]:
    """The families' short names grouped by key(family), in the order each value first appears; None is left out."""
    groups: dict[object, list[str]] = {}
    for family in families:
        value = key(family)
        if value is not None:
            groups.setdefault(value, []).append(family.short_name)
    return list(groups.items())


def auto_layers(default_layers, language: str = "en") -> str:
    """What `layers = auto` takes for a family's default_layers: "the last four", "every joint block"."""
    words = PHRASES[language]
    if default_layers is ALL_BLOCKS:
        return words["every"]
    numbers = words["numbers"]
    count = numbers[default_layers - 1] if default_layers <= len(numbers) else words["number"].format(default_layers)
    return words["last"].format(count)


def layers_defaults(families, language: str = "en") -> str:
    """What `layers = auto` takes on each family: "the last four on Flux.1, Chroma, Qwen-Image and HunyuanVideo;
    the last three on Flux.2; every joint block on SD3 / SD3.5 and CogVideoX"."""
    words = PHRASES[language]
    groups = [words["layers"].format(what=auto_layers(default, language), names=join(names, language, "and"))
              for default, names in grouped(families, lambda family: family.default_layers)]
    return finish(words["layers_between"].join(groups), language)


def layers_tooltip(families, language: str = "en") -> str:
    """The `layers` input's tooltip (without the translations' advanced mark, PHRASES[language]["advanced"])."""
    return PHRASES[language]["layers_tooltip"].format(defaults=layers_defaults(families, language))


def cfg_values(families, language: str = "en") -> str:
    """The cfg each family is usually sampled at: "1.0 for Flux.1 and HunyuanVideo, about 4 for Chroma and SD3 /
    SD3.5, ..."; families without a typical_cfg are left out."""
    words = PHRASES[language]
    groups = [words["cfg_about" if cfg.about else "cfg"].format(value=cfg.value, names=join(names, language, "and"))
              for cfg, names in grouped(families, lambda family: family.typical_cfg)]
    return finish(words["cfg_between"].join(groups), language)


def cfg_tooltip(families, language: str = "en") -> str:
    """The sampler's `cfg` tooltip."""
    return PHRASES[language]["cfg_tooltip"].format(values=cfg_values(families, language))


def video_families(families, language: str = "en") -> str:
    """The video families' short names, "HunyuanVideo, CogVideoX"."""
    return family_list([family for family in families if family.video], language, conjunction=None, short=True)


# What the help pages' generated spans hold, <!-- families:KIND -->...<!-- /families -->, by KIND
HELP_SPANS = {
    "list": lambda families, language: family_list(families, language, conjunction=None, since=True),
    "short": lambda families, language: family_list(families, language, short=True),
    "layers": layers_defaults,
    "cfg": cfg_values,
    "video": video_families,
}


def finish(text: str, language: str) -> str:
    """Korean particles resolved; no space beside a full-width parenthesis (Chinese, Japanese)."""
    if language == "ko":
        return korean_particles(text)
    return text.replace("） ", "）").replace(" （", "（")


KOREAN_PARTICLE = re.compile(r"\((과|은)/(와|는)\)")


def korean_particles(text: str) -> str:
    """Resolve each "(과/와)" and "(은/는)" by the sound the word before it ends in, as a Korean reader says it:
    "Flux.1과" (일), "Chroma와", "SD3 / SD3.5는" (오)."""
    def particle(match: re.Match) -> str:
        before = re.sub(r"\([^()]*\)$", "", text[:match.start()]).rstrip()  # a parenthesis is not read out
        return match[1] if ends_in_consonant(before) else match[2]

    return KOREAN_PARTICLE.sub(particle, text)


def ends_in_consonant(word: str) -> bool:
    """Whether a word, read in Korean, ends in a final consonant (batchim): Hangul by its last syllable; digits
    as Sino-Korean numerals (1 일, 3 삼, 6 육, 7 칠, 8 팔, 0 영); a capital as a letter name (L 엘, M 엠, N 엔,
    R 알); a lower-case ending l, m, n or ng as it sounds (Wan 완). Other Latin endings are read with a vowel
    (Chroma 크로마, Image 이미지, X 엑스)."""
    if not word:
        return False
    last = word[-1]
    if "\uac00" <= last <= "\ud7a3":
        return (ord(last) - 0xAC00) % 28 != 0
    if last.isdigit():
        return last in "013678"
    if last.isupper():
        return last in "LMNR"
    return word.endswith(("l", "m", "n", "ng"))
