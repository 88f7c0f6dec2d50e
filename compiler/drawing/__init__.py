"""`dlc graph`: a picture of a model (DOT, SVG, or one self-contained HTML file).

`structure` reads what to draw from a lowered spec (or the optimized IR), `layout` places
it with grandalf's Sugiyama layout, and `render` writes DOT, SVG and HTML.
"""
