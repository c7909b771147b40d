"""The names the world can draw and say: its silhouettes and colours (the renderer's drawing functions and
RGB values are keyed by these, `ovip.world.render`). A leaf module, so that the world's configuration can
check names without importing the renderer."""

SHAPE_NAMES = (
    "ball", "box", "tent", "star", "cross", "moon", "heart", "ring", "house", "tree", "arrow", "cup", "fish",
    "boat", "bell", "key", "diamond",
)  # fmt: skip
COLOR_NAMES = (
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "orange",
    "white",
    "black",
    "pink",
    "brown",
    "cyan",
    "gray",
)
