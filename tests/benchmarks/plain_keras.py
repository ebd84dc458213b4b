"""The baseline: the same training as the classification flow, as a plain Keras script.

No orchestration, no validation, no artifacts: read the idx files, standardise with the
train statistics, fit the course MLP for N epochs with the course's best-only checkpoint,
score that checkpoint (and the last epoch's weights) on the test set. Prints one JSON line.
"""
import gzip
import json
import os
import sys
import tempfile
import time

import numpy as np

start = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
folder = os.path.join(os.environ["DATA_MIRROR"], "fashion-mnist")


def idx(name):
    blob = gzip.decompress(open(os.path.join(folder, name), "rb").read())
    dims = np.frombuffer(blob, ">u4", blob[3], 4).astype(int)
    return np.frombuffer(blob, np.uint8, offset=4 + 4 * blob[3]).reshape(dims)


X_full, y_full = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
X_test, y_test = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
X_valid, X_train = X_full[:5000], X_full[5000:]
y_valid, y_train = y_full[:5000], y_full[5000:]
mean = X_train.mean(axis=0, dtype=np.float64)
std = X_train.std(axis=0, dtype=np.float64)
std[std == 0] = 1.0
# in float32 from the float64 statistics, as the flow's scaler does: the same inputs to the bit,
# so the two trainings can be compared to the last test image
scale = lambda X: (X.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32)  # noqa: E731
X_train, X_valid, X_test = scale(X_train), scale(X_valid), scale(X_test)

keras.utils.set_random_seed(42)
model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                          keras.layers.Dense(300, activation="relu"),
                          keras.layers.Dense(100, activation="relu"),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(learning_rate=0.01),
              metrics=["accuracy"])
best = os.path.join(tempfile.mkdtemp(prefix="plain-keras-"), "best.keras")
fit_start = time.perf_counter()
# the course's ModelCheckpoint(save_best_only=True) on the validation loss: the flow, too, keeps that epoch
model.fit(X_train, y_train, epochs=epochs, batch_size=32, validation_data=(X_valid, y_valid), verbose=0,
          callbacks=[keras.callbacks.ModelCheckpoint(best, save_best_only=True)])
fit_seconds = time.perf_counter() - fit_start
last = model.evaluate(X_test, y_test, verbose=0, return_dict=True)
test = keras.models.load_model(best).evaluate(X_test, y_test, verbose=0, return_dict=True)
print(json.dumps({"test": {k: float(v) for k, v in test.items()},
                  "test_last_epoch": {k: float(v) for k, v in last.items()}, "fit_seconds": fit_seconds,
                  "seconds": time.perf_counter() - start}))
