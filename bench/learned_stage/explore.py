"""Other classifiers, same leave-one-file-out CV on the training sets only (no holdout here).

Prints pooled out-of-fold AUC and recall at 2% FPR (risk-or-danger vs none) for a few
heads on the window-128 embeddings, and a TF-IDF baseline without the embedding model.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from cv import threshold_for, window_arrays

rows = pickle.load(open("/tmp/ls_train_w128.pkl", "rb"))
exp = np.array([r["expected"] for r in rows])
ypos = (exp != "none").astype(int)
files = sorted({r["file"] for r in rows})


def report(name, s):
    t = threshold_for(s[exp == "none"], 0.02)
    print(
        f"{name:40s} auc={roc_auc_score(ypos, s):.3f} recall@2%={(s[ypos == 1] >= t).mean():.3f}", flush=True
    )


def emb_model(make):
    s = np.zeros(len(rows))
    for f in files:
        tr = [i for i, r in enumerate(rows) if r["file"] != f]
        te = [i for i, r in enumerate(rows) if r["file"] == f]
        X, yp, _ = window_arrays(rows, tr)
        clf = make().fit(X, yp)
        s[te] = [clf.predict_proba(rows[i]["emb"])[:, 1].max() for i in te]
    return s


def tfidf_model(C, analyzer, ngram):
    s = np.zeros(len(rows))
    texts = [r["text"] for r in rows]
    for f in files:
        tr = [i for i, r in enumerate(rows) if r["file"] != f]
        te = [i for i, r in enumerate(rows) if r["file"] == f]
        vec = TfidfVectorizer(analyzer=analyzer, ngram_range=ngram, sublinear_tf=True, min_df=2)
        X = vec.fit_transform([texts[i] for i in tr])
        clf = LogisticRegression(C=C, max_iter=5000).fit(X, ypos[tr])
        s[te] = clf.predict_proba(vec.transform([texts[i] for i in te]))[:, 1]
    return s


which = sys.argv[1:] or ["svc", "mlp", "tfidf"]
if "svc" in which:
    for C in (1.0, 3.0, 10.0):
        report(f"SVC rbf C={C}", emb_model(lambda: SVC(C=C, kernel="rbf", probability=True, random_state=0)))
if "mlp" in which:
    for a in (1e-3, 1e-2):
        report(
            f"MLP(256) alpha={a}",
            emb_model(
                lambda: MLPClassifier((256,), alpha=a, max_iter=500, early_stopping=True, random_state=0)
            ),
        )
if "tfidf" in which:
    for C in (3.0, 10.0, 30.0):
        report(f"tfidf word1-2 LR C={C}", tfidf_model(C, "word", (1, 2)))
        report(f"tfidf char_wb2-5 LR C={C}", tfidf_model(C, "char_wb", (2, 5)))
