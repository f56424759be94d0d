"""The pipeline's stages, one module each (fetch, prepare, train, evaluate, compare, track): what dvc.yaml's
commands run, each in a fresh process that imports only what its stage needs."""
