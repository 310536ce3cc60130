"""Selection of images by metadata: isicarchive's operators on the store's dotted paths.

>>> from archivestore.select import select
>>> sel = select(store, "meta.clinical.diagnosis != nevus")  # doctest: +SKIP
>>> sel.refine("meta.clinical.age_approx >= 60").ids          # doctest: +SKIP
"""

from archivestore._select import OPERATORS, Criterion, Selection, add_select_command, select

__all__ = ["OPERATORS", "Criterion", "Selection", "add_select_command", "select"]
