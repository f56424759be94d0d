"""A byte difference between a committed and a fresh result file is named by its first differing value."""

from __future__ import annotations

from adaline_repro.ops.byte_diff import FirstDifference, differing_files, first_difference


def test_equal_bytes_are_no_difference():
    assert first_difference("plots/loss/manual.csv", b"epoch,train_mse\n1,0.5\n", b"epoch,train_mse\n1,0.5\n") is None


def test_a_curve_names_the_epoch_and_column():
    old = b"epoch,train_mse\n1,0.38849\n2,0.31679\n3,0.27000\n"
    new = b"epoch,train_mse\n1,0.38849\n2,0.31678\n3,0.26999\n"
    assert first_difference("plots/loss/manual.csv", old, new) == FirstDifference(
        "plots/loss/manual.csv", "line 3 (epoch=2), column train_mse", "0.31679", "0.31678"
    )


def test_a_model_names_the_json_key_and_index():
    old = b'{"bias": 0.5, "weight": [0.1, 0.2]}\n'
    new = b'{"bias": 0.5, "weight": [0.1, 0.20000001]}\n'
    assert first_difference("models/module.json", old, new) == FirstDifference(
        "models/module.json", "key weight[1]", "0.2", "0.20000001"
    )


def test_other_text_names_the_line_and_binary_the_byte():
    lock_old, lock_new = b"schema: '2.0'\nmd5: aa\n", b"schema: '2.0'\nmd5: ab\n"
    assert first_difference("dvc.lock", lock_old, lock_new) == FirstDifference(
        "dvc.lock", "line 2", "md5: aa", "md5: ab"
    )
    png_old, png_new = b"\x89PNG\x00\x01\x02", b"\x89PNG\x00\x01\x03"
    found = first_difference("reports/loss_curves.png", png_old, png_new)
    assert found.where == "byte 6 (sizes 7 and 7)"


def test_a_file_on_one_side_only_is_a_difference(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "metrics.json").write_text("{}")
    (tmp_path / "a" / "same.txt").write_text("x")
    (tmp_path / "b" / "same.txt").write_text("x")
    found = differing_files(tmp_path / "a", tmp_path / "b", ["same.txt", "metrics.json"])
    assert found == [FirstDifference("metrics.json", "file", "present", "missing")]
