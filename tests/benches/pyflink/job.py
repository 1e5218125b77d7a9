"""The PyFlink side of the comparison: a DataStream job reading the events file line by
line, mapping each with ``mapping.map_line`` (a Python ``flat_map``), and writing the
records to a directory of part files, in batch mode (so the sink finalises its files when
the input ends).

    python job.py <events.jsonl> <output dir> <parallelism> <sdk/python dir>

Run by ``compare.py`` with an interpreter that has ``apache-flink``.
"""

import os
import sys

from pyflink.common import Configuration, Encoder, Types, WatermarkStrategy
from pyflink.datastream import RuntimeExecutionMode, StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import FileSink, FileSource, StreamFormat


def main() -> None:
    events, out, parallelism, sdk = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    config = Configuration()
    # The Python workers must be this interpreter (the one with apache-flink), not the
    # first `python` on the PATH.
    config.set_string("python.executable", sys.executable)
    config.set_string("python.client.executable", sys.executable)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.set_parallelism(parallelism)
    here = os.path.dirname(os.path.abspath(__file__))
    env.add_python_file(os.path.join(here, "mapping.py"))
    env.add_python_file(os.path.join(sdk, "sluice_sdk"))

    def map_line(line):
        import mapping  # on the worker, where add_python_file put it

        yield from mapping.map_line(line)

    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), events).build()
    sink = FileSink.for_row_format(out, Encoder.simple_string_encoder()).build()
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "events")
        .flat_map(map_line, output_type=Types.STRING())
        .sink_to(sink)
    )
    env.execute("customers-cdm")


if __name__ == "__main__":
    main()
