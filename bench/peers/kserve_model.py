"""KServe peer: a minimal ``kserve.Model`` that loads model.joblib and calls predict.

Mirrors KServe's sklearnserver: joblib.load in ``load``, ``get_predict_input`` ->
``predict`` -> ``get_predict_response``; everything else is KServe's ModelServer with its
defaults (one uvicorn worker). Runs in .cache/bench/kserve-venv (bench/requirements-kserve.txt).

Usage: python kserve_model.py --model_name NAME --model_file PATH --http_port P --workers 1
       --enable_grpc false
"""

import argparse

import joblib
import kserve
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(kserve.Model):
    def __init__(self, name: str, model_file: str):
        super().__init__(name)
        self.model_file = model_file
        self.ready = False

    def load(self) -> bool:
        self._model = joblib.load(self.model_file)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        instances = get_predict_input(payload)
        result = self._model.predict(instances)
        return get_predict_response(payload, result, self.name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_file", required=True)
    args, _ = parser.parse_known_args()
    model = SKLearnModel(args.model_name, args.model_file)
    model.load()
    # As sklearnserver: the ModelServer takes --http_port, --workers, --enable_grpc from argv.
    kserve.ModelServer().start([model])
