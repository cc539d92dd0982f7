"""`Index`: a saved vector index with the item ids it returns and the users' vectors it serves, loaded
from an MLflow run (`Index.load(run_id).search(user_ids, k)`) or a folder."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import faiss
import mlflow
import numpy as np

from bluewhale.recall.index import set_search_params

ARTIFACT = "recall_index"


class Index:
    """Top-k items for users or for query vectors; ids as the processed data numbers them."""

    def __init__(
        self,
        index: faiss.Index,
        item_ids: np.ndarray,
        user_ids: np.ndarray,
        user_vectors: np.ndarray,
        meta: dict[str, Any],
    ) -> None:
        self.index, self.item_ids, self.meta = index, np.asarray(item_ids), meta
        self.users = {int(u): i for i, u in enumerate(user_ids)}
        self.user_vectors = np.asarray(user_vectors, dtype=np.float32)

    @property
    def dim(self) -> int:
        return self.index.d

    def search_vectors(self, vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Item ids [q, k] and scores [q, k] of the top k for query vectors [q, dim] (-1: fewer found)."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(
                f"vectors: queries of shape {list(vectors.shape)}, expected [n, {self.dim}] "
                f"(the index's {self.meta.get('index')} vectors are {self.dim} wide)"
            )
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected a positive integer, got {k!r}")
        scores, rows = self.index.search(np.ascontiguousarray(vectors), k)
        return np.where(rows >= 0, self.item_ids[rows.clip(0)], -1), scores

    def search(self, user_ids, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Item ids [n, k] and scores of the top k for users (by the id the processed data gives them)."""
        user_ids = np.atleast_1d(np.asarray(user_ids))
        unknown = [int(u) for u in user_ids if int(u) not in self.users]
        if unknown:
            raise ValueError(
                f"user_ids: {unknown[:5]} have no vector in this index ({len(self.users)} users known, "
                "those of the held-out rows); query by vector with search_vectors"
            )
        return self.search_vectors(self.user_vectors[[self.users[int(u)] for u in user_ids]], k)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(folder / "index.faiss"))
        np.save(folder / "item_ids.npy", self.item_ids)
        np.save(folder / "user_ids.npy", np.array(list(self.users), dtype=np.int64))
        np.save(folder / "user_vectors.npy", self.user_vectors)
        (folder / "meta.json").write_text(json.dumps(self.meta, indent=1, default=str))

    def log(self) -> None:
        """Save to the active MLflow run as the artifact folder `recall_index`."""
        with tempfile.TemporaryDirectory() as tmp:
            self.save(Path(tmp) / ARTIFACT)
            mlflow.log_artifacts(str(Path(tmp) / ARTIFACT), ARTIFACT)

    @classmethod
    def load(cls, run: str | Path) -> Index:
        """From an MLflow run id (its `recall_index` artifact, via the current tracking URI) or a folder."""
        folder = Path(run)
        if not (folder / "index.faiss").exists():
            try:
                folder = Path(mlflow.artifacts.download_artifacts(run_id=str(run), artifact_path=ARTIFACT))
            except Exception as error:
                raise ValueError(
                    f"run: {run!r} is neither a folder with index.faiss nor an MLflow run with a {ARTIFACT} "
                    f"artifact ({str(error).splitlines()[0]})"
                ) from error
        meta = json.loads((folder / "meta.json").read_text())
        index = faiss.read_index(str(folder / "index.faiss"))
        set_search_params(index, meta.get("settings", {}))
        return cls(
            index,
            np.load(folder / "item_ids.npy"),
            np.load(folder / "user_ids.npy"),
            np.load(folder / "user_vectors.npy"),
            meta,
        )
