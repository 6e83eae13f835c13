"""The `dataframe` codec: a pandas DataFrame as Parquet, keeping column names, order and dtypes.

pandas and pyarrow are imported when a table is first encoded or decoded, not with the codec registry: reading a
stored model (`cardloop show RUN CARD`) then does not pay for them.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from cardloop import kinds
from cardloop.errors import StoreError
from cardloop.store.codec import Codec, CodecContext

if TYPE_CHECKING:
    import pandas as pd

HEAD_ROWS = 5


class DataFrameCodec(Codec):
    """A DataFrame as Parquet bytes (pyarrow), with pandas metadata so that dtypes and the index come back."""

    name = "dataframe-parquet"
    kind = kinds.DATAFRAME
    extension = "parquet"

    def encode(self, value: pd.DataFrame, ctx: CodecContext) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        duplicated = value.columns[value.columns.duplicated()].tolist()
        if duplicated:
            raise StoreError(f"a table with duplicated column names cannot be stored: {duplicated}")
        try:
            table = pa.Table.from_pandas(value)
        except (pa.ArrowException, ValueError, TypeError) as error:
            raise StoreError(f"the table cannot be stored as Parquet: {error}") from error
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()

    def decode(self, data: bytes, ctx: CodecContext) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(data)).to_pandas()

    def summarize(self, value: pd.DataFrame) -> dict[str, Any]:
        head = value.head(HEAD_ROWS).to_json(orient="records", date_format="iso", default_handler=str)
        return {
            "rows": len(value),
            "columns": [str(c) for c in value.columns],
            "dtypes": {str(c): str(t) for c, t in value.dtypes.items()},
            "head": json.loads(head),
        }

    def accepts(self, value: Any) -> bool:
        pandas = sys.modules.get("pandas")  # a value cannot be a DataFrame before pandas is imported
        return pandas is not None and isinstance(value, pandas.DataFrame)
