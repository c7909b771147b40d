"""AMBER generative / discriminative scoring on hand-made data with hand-worked numbers, plus the real files."""

import pytest

from ovip.eval.amber import (
    AmberData,
    amber_discriminative,
    amber_f1,
    amber_generative,
    load_amber,
    load_queries,
)
from ovip.eval.amber_text import (
    ExactMatcher,
    VectorMatcher,
    VocabularyNounExtractor,
    default_extractor,
    singular,
)

ASSOCIATION = {
    "person": ["man", "woman", "individual"], "dog": ["puppy"], "grass": ["ground"], "ground": ["floor"],
    "cat": [], "car": [], "tree": [], "sky": [], "bird": [], "light": [], "ship": [], "boat": ["ship"],
}  # fmt: skip
ANNOTATIONS = [
    {"id": 1, "type": "generative", "truth": ["person", "grass", "sky"], "hallu": ["dog", "car"]},
    {"id": 2, "type": "generative", "truth": ["dog", "tree", "sky"], "hallu": ["cat", "bird"]},
    {"id": 3, "type": "discriminative-hallucination", "truth": "no"},
    {"id": 4, "type": "discriminative-attribute-state", "truth": "yes"},
    {"id": 5, "type": "discriminative-attribute-state", "truth": "no"},
    {"id": 6, "type": "relation", "truth": "no"},
    {"id": 7, "type": "discriminative-relation", "truth": "yes"},
    {"id": 8, "type": "generative", "truth": ["ship", "ship"], "hallu": []},
    {"id": 9, "type": "generative", "truth": ["boat", "ship"], "hallu": []},
]


@pytest.fixture
def data():
    return AmberData(ANNOTATIONS, ASSOCIATION, frozenset({"light", "individual"}))


def test_generative_hand_worked(data):
    """Built-in extractor + exact matcher.

    r1 "A man and two women stand on the grass under the sky, with a dog, a light and a car."
       vocabulary nouns: man, woman (women), grass, sky, dog, light, car = 7 mentions
       man, woman -> association words of truth "person" -> cover person; grass, sky cover themselves;
       light is a global safe word: counted, not hallucinated, covers nothing;
       dog, car are hallu words: Cog marks both, neither is near a truth word -> 2 hallucinated.
       truth covered 3/3, hallu covered 2/2.
    r2 "Two puppies play near a tree. Dog." puppies -> puppy -> association of truth "dog" -> covers dog;
       tree covers tree; "Dog" is capitalised and, like WordNet's lemmatizer, not lowercased: not a
       vocabulary word, ignored. 2 mentions, 0 hallucinated; truth covered 2/3 (sky missing); hallu 0/2.
    CHAIR = 2 / 9 = 22.2; Cover = 5 / 6 = 83.3; Hal = 1 / 2 = 50.0; Cog = 2 / 4 = 50.0;
    F1 (from the rounded values, as OViP's lookup.py) = 2 * 77.8 * 83.3 / (77.8 + 83.3) = 80.46.
    """
    responses = {
        1: "A man and two women stand on the grass under the sky, with a dog, a light and a car.",
        2: "Two puppies play near a tree. Dog.",
    }
    out = amber_generative(
        responses, data, VocabularyNounExtractor(data.vocabulary), ExactMatcher(), details=True
    )
    assert (out["CHAIR"], out["Cover"], out["Hal"], out["Cog"]) == (22.2, 83.3, 50.0, 50.0)
    assert out["F1"] == 80.46
    assert out["noun_extractor"] == "builtin-vocabulary" and out["matcher"] == "exact"
    r1, r2 = out["responses"]
    assert r1["nouns"] == ("man", "woman", "grass", "sky", "dog", "light", "car")
    assert r1["hallucinated"] == ("dog", "car")
    assert r1["hallu_covered"] == (True, True)
    assert r2["nouns"] == ("puppy", "tree") and r2["truth_covered"] == (True, True, False)
    assert out["exact"]["n_mentions"] == 9 and out["exact"]["n_hallucinated_mentions"] == 2


def test_generative_first_match_quirks(data):
    """AMBER marks the *first* matching slot: association words come before the objects.

    id 8 truth [ship, ship]: "ship" covers only the first copy -> Cover 1/2.
    id 9 truth [boat, ship], boat's association list holds "ship": "ship" marks boat, not ship -> 1/2.
    """
    out = amber_generative(
        {8: "A ship.", 9: "A ship."},
        data,
        VocabularyNounExtractor(data.vocabulary),
        ExactMatcher(),
        details=True,
    )
    assert [r["truth_covered"] for r in out["responses"]] == [(True, False), (True, False)]
    assert out["CHAIR"] == 0.0 and out["Cover"] == 50.0


def test_vector_matcher_near_synonyms(data):
    """Fake 2-d vectors. "floor" (vocabulary word, not in r1's lists) is cos 0.95 from hallu "cat"
    (Cog) and cos 0.9 from truth "grass": step 4.4 marks cat, step 4.5 covers grass -> not hallucinated.
    With the exact matcher the same response hallucinates "floor"."""
    vectors = {"floor": (1.0, 0.0), "cat": (0.95, 0.3122), "grass": (0.9, 0.4359), "sky": (0.0, 1.0)}
    matcher = VectorMatcher(vectors.get, threshold=0.8)
    assert matcher.similar("floor", "grass") and not matcher.similar("floor", "sky")
    assert not matcher.similar("floor", "no-vector")
    ann = {**ANNOTATIONS[1], "hallu": ["cat"], "truth": ["grass"]}
    d = AmberData([ANNOTATIONS[0], ann], ASSOCIATION, frozenset())
    ext = VocabularyNounExtractor(d.vocabulary)
    vec = amber_generative({2: "the floor"}, d, ext, matcher, details=True)
    exact = amber_generative({2: "the floor"}, d, ext, ExactMatcher())
    assert vec["CHAIR"] == 0.0 and vec["Cover"] == 100.0 and vec["Cog"] == 100.0
    assert exact["CHAIR"] == 100.0 and exact["Cog"] == 0.0


def test_singular_rules():
    vocab = {"dog", "puppy", "bus", "glass", "knife", "chopsticks", "bench"}
    assert [
        singular(w, vocab)
        for w in ("dogs", "puppies", "buses", "glasses", "knives", "chopsticks", "benches", "Dogs", "leaves")
    ] == ["dog", "puppy", "bus", "glass", "knife", "chopsticks", "bench", "Dogs", "leaf"]


def test_discriminative_hand_worked(data):
    """ids      3(exist,no) 4(state,yes) 5(state,no) 6(relation,no) 7(relation,yes)
    answer      "No"        "yes"        "Yes"       "no."          "maybe"
    normalised  no          yes          yes         no             None (wrong, not a "no")
    overall: correct 3/5 = 60.0; answered no 2, both truly no -> P 100.0; truly no 3 -> R 66.7;
             AMBER F1 = 2 * 1.0 * .667 / (1.667 + 1e-4) = 80.0
    attribute (4, 5): acc 50, no "no" answered -> P 0, R 0, F1 0.
    relation (6, 7): acc 50, P 100, R 100.
    Official exact-string rule (normalize=False): only "No" (3) and "Yes" (5) count -> accuracy 1/5 = 20.
    """
    responses = {3: "No", 4: "yes", 5: "Yes", 6: "no.", 7: "maybe"}
    out = amber_discriminative(responses, data)
    assert (out["Accuracy"], out["Precision"], out["Recall"], out["F1"]) == (60.0, 100.0, 66.7, 80.0)
    assert out["exact"]["n_invalid"] == 1
    assert (out["attribute"]["Accuracy"], out["attribute"]["F1"]) == (50.0, 0.0)
    assert (out["relation"]["Precision"], out["relation"]["Recall"]) == (100.0, 100.0)
    assert out["existence"]["F1"] == amber_f1(100.0, 100.0, 1e-3)
    strict = amber_discriminative(responses, data, normalize=False)
    assert strict["Accuracy"] == 20.0 and strict["exact"]["n_invalid"] == 3


def test_discriminative_counts_invalid_and_leaves_empty_dimensions_blank(data):
    """Answers only to ids 6 ("no.", relation) and 7 ("maybe", relation): the relation block has n 2 and
    n_invalid 1; state, number, action, attribute and existence have no answers, so no numbers (None),
    never a 0.0 that reads like a measured score."""
    out = amber_discriminative({6: "no.", 7: "maybe"}, data)
    assert (out["n"], out["n_invalid"]) == (2, 1)
    assert (out["relation"]["n"], out["relation"]["n_invalid"], out["relation"]["Accuracy"]) == (2, 1, 50.0)
    for dim in ("existence", "attribute", "state", "number", "action"):
        assert out[dim] == {
            "n": 0,
            "n_invalid": 0,
            "Accuracy": None,
            "Precision": None,
            "Recall": None,
            "F1": None,
        }, dim


def test_wrong_task_ids_rejected(data):
    with pytest.raises(ValueError):
        amber_generative({3: "x"}, data, VocabularyNounExtractor(data.vocabulary), ExactMatcher())
    with pytest.raises(ValueError):
        amber_discriminative({1: "No"}, data)


@pytest.fixture(scope="module")
def real(shared_data):
    amber_dir = shared_data / "amber"
    for name in ("annotations.json", "relation.json", "safe_words.txt", "query_generative.json"):
        if not (amber_dir / name).exists():
            pytest.skip(
                f"AMBER data file {amber_dir / name} is absent (AMBER's annotation files: junyangwang0410/AMBER, data/)"
            )
    return amber_dir, load_amber(amber_dir)


def test_real_files_load(real):
    """Counts of the released AMBER files."""
    amber_dir, data = real
    assert len(data.annotations) == 15220
    assert sum(e["type"] == "generative" for e in data.annotations) == 1004
    assert len(data.vocabulary) == 418 and len(data.global_safe_words) == 9
    assert {"TV", "e-book", "air-conditioning"} <= data.vocabulary
    gen = load_queries(amber_dir, "generative")
    assert len(gen) == 1004 and gen[0]["query"] == "Describe this image."
    assert default_extractor(data.vocabulary).name in ("nltk", "builtin-vocabulary")


def test_real_ids_evaluate(real):
    """id 1: truth sky forest grass person lake mountain road; hallu cloud sun bird dog flower.
    "A person walks on a road by a lake, with trees, clouds and a dog in the sky." ->
    nouns person road lake tree cloud dog sky (7); tree is an association word of forest (covers it);
    cloud and dog are hallu words -> 2 hallucinated, Cog 2/5. Covered: person road lake forest sky = 5 of 7
    (grass and mountain missing). CHAIR 2/7 = 28.6, Cover 5/7 = 71.4, Hal 100, Cog 40.0.
    ids 1005 (state, yes), 1006 (state, no) answered "Yes" / "No" -> accuracy 100.
    """
    _, data = real
    ext = VocabularyNounExtractor(data.vocabulary)
    gen = amber_generative(
        {1: "A person walks on a road by a lake, with trees, clouds and a dog in the sky."},
        data,
        ext,
        ExactMatcher(),
    )
    assert (gen["CHAIR"], gen["Cover"], gen["Hal"], gen["Cog"]) == (28.6, 71.4, 100.0, 40.0)
    dis = amber_discriminative({1005: "Yes", 1006: "No"}, data)
    assert dis["Accuracy"] == 100.0 and dis["state"]["Accuracy"] == 100.0
