"""The overhead floor: a bare FastAPI endpoint that only calls predict.

No validation, no metrics, no logging: what one uvicorn worker costs around one
``model.predict`` call. Runs in the project's .venv (same FastAPI, uvicorn and orjson pins as
the service). Usage: BENCH_MODEL_FILE=path/model.joblib uvicorn floor_app:app --port P
"""

import os

import joblib
import numpy as np
import orjson
from fastapi import FastAPI, Request, Response

model = joblib.load(os.environ["BENCH_MODEL_FILE"])
app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> Response:
    rows = np.asarray(orjson.loads(await request.body())["instances"], dtype=np.float64)
    predictions = model.predict(rows)
    body = orjson.dumps({"predictions": predictions.tolist()})
    return Response(body, media_type="application/json")
