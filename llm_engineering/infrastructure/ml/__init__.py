"""Heavy ML adapters: model preparation, serving-engine launchers, the transformers scorer, the model runtime of
an evaluation, fine-tuning (`training/`) and export. Importing a module here loads no model library."""
