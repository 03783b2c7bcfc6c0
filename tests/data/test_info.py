"""fusionrec data info --data DIR: what the description makes of the data, negative feedback included."""
from __future__ import annotations

import pandas as pd

from fusionrec.cli import main


def test_info_reads_the_description_and_counts_negative_feedback(tmp_path, capsys):
    pd.DataFrame({"userId": ["1", "1", "2", "2", "3", "3"], "movieId": ["10", "11", "10", "12", "11", "12"],
                  "rating": [5, 2, 4, 3, 1, 5]}).to_csv(tmp_path / "ratings.csv", index=False)
    assert main(["data", "init", str(tmp_path)]) == 0
    text = (tmp_path / "fusionrec.yaml").read_text().replace("positive_rating: null", "positive_rating: 4")
    (tmp_path / "fusionrec.yaml").write_text(text)
    capsys.readouterr()
    assert main(["data", "info", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "interactions 6" in out
    assert "negative feedback: 3 of 6 rows" in out
