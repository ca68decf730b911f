"""nepse-etl.

pyarrow.parquet imports pyarrow.fs, which loads the S3, GCS, Azure and HDFS filesystems (their libraries
and ~4 MB of memory in every process of a run) although the raw zone is only ever on a local disk. An entry
of None in sys.modules makes each of those imports fail, which pyarrow.fs treats as a build without that
filesystem: local files read and write as before.
"""

import sys

for _remote_filesystem in ("pyarrow._s3fs", "pyarrow._gcsfs", "pyarrow._azurefs", "pyarrow._hdfs"):
    sys.modules.setdefault(_remote_filesystem, None)  # type: ignore[arg-type]
