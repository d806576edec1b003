"""The front ends over the pipeline: the ``generate`` command (``cli``), batch generation
(``batch``), the app's logic (``ui``) and its figures (``plotting``)."""
