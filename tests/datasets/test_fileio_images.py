"""read_image / write_image / load_mat: RGB order, channel handling, clear errors."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pytest
import scipy.io

from animalpose.datasets.fileio import DataError, load_mat, read_image, write_image


def _pattern(h=24, w=32):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_round_trip_is_rgb(tmp_path):
    image = _pattern()
    image[0, 0] = (255, 0, 0)  # pure red in RGB
    write_image(tmp_path / "a.png", image)
    back = read_image(tmp_path / "a.png")
    assert back.dtype == np.uint8 and back.shape == (24, 32, 3)
    np.testing.assert_array_equal(back, image)
    # OpenCV itself stores BGR: the red pixel is (0, 0, 255) there.
    assert tuple(cv2.imread(str(tmp_path / "a.png"))[0, 0]) == (0, 0, 255)


def test_alpha_dropped_and_grey_expanded(tmp_path):
    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 10, 200, 7  # B=10, R=200, alpha=7
    cv2.imwrite(str(tmp_path / "rgba.png"), bgra)
    rgb = read_image(tmp_path / "rgba.png")
    assert rgb.shape == (8, 8, 3) and tuple(rgb[0, 0]) == (200, 0, 10)
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((5, 6), 77, np.uint8))
    grey = read_image(tmp_path / "grey.png")
    assert grey.shape == (5, 6, 3) and (grey == 77).all()


def test_jpeg_round_trip_close(tmp_path):
    image = np.full((32, 32, 3), (30, 120, 220), np.uint8)
    write_image(tmp_path / "a.jpg", image)
    back = read_image(tmp_path / "a.jpg")
    assert np.abs(back.astype(int) - image).max() <= 3


def test_missing_empty_and_garbage_files_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.png.*not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty.png.*empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    with pytest.raises(DataError, match="junk.png.*decode"):
        read_image(tmp_path / "junk.png")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_images_are_rejected(tmp_path, suffix):
    path = tmp_path / f"full{suffix}"
    write_image(path, _pattern(96, 128))
    data = path.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    # Depending on the cut, OpenCV decodes a truncated JPEG silently (grey bottom rows);
    # read_image checks the end marker first, refuses it and names the file.
    with pytest.raises(DataError, match=rf"cut{suffix}.*truncated"):
        read_image(cut)
    # Bytes padded after the end marker are still a complete image.
    padded = tmp_path / f"padded{suffix}"
    padded.write_bytes(data + b"\x00" * 16)
    assert read_image(padded).shape == (96, 128, 3)


def test_load_mat_reads_variables_and_names_missing_ones(tmp_path):
    path = tmp_path / "r.mat"
    scipy.io.savemat(path, {"ranges": np.array([[1, 2, 3]], np.int32)})
    assert load_mat(path, ("ranges",))["ranges"].tolist() == [[1, 2, 3]]
    with pytest.raises(DataError, match=r"r\.mat.*'landmarks'"):
        load_mat(path, ("landmarks",))
    with pytest.raises(DataError, match="absent.mat.*not found"):
        load_mat(tmp_path / "absent.mat", ("ranges",))
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 garbage" * 3)
    with pytest.raises(DataError, match="bad.mat"):
        load_mat(tmp_path / "bad.mat", ("ranges",))


def _matlab_char(name: str) -> np.ndarray:
    return np.array([[c.encode()] for c in name], dtype="S1")


def test_load_mat_v73_arrays_cells_and_struct_field_order(tmp_path):
    """A MATLAB v7.3 (HDF5) file: column-major arrays, cells of refs, structs whose fields are
    returned in MATLAB_fields order (so positional access works)."""
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("ranges", data=np.array([[1, 2, 3], [4, 5, 6]]).T)  # MATLAB 2 x 3
        refs = f.create_group("#refs#")
        cell_refs = []
        for i in range(2):
            g = refs.create_group(f"s{i}")
            # h5py would list "visibility" before "zcoords" alphabetically; MATLAB_fields rules.
            g.create_dataset("zcoords", data=np.full((2, 3), float(i)))  # MATLAB 3 x 2
            g.create_dataset("visibility", data=np.ones((1, 3)))
            g.attrs["MATLAB_class"] = np.bytes_("struct")
            g.attrs.create(
                "MATLAB_fields",
                [_matlab_char("zcoords"), _matlab_char("visibility")],
                dtype=h5py.vlen_dtype(np.dtype("S1")),
            )
            cell_refs.append(g.ref)
        f.create_dataset("landmarks", data=np.array([cell_refs], dtype=h5py.ref_dtype))
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file".ljust(116, b" "))
    content = load_mat(path, ("ranges", "landmarks"))
    assert content["ranges"].tolist() == [[1, 2, 3], [4, 5, 6]]
    cells = content["landmarks"]
    assert cells.shape == (2, 1)
    record = cells[1, 0].reshape(-1)[0]
    assert record.dtype.names == ("zcoords", "visibility")
    assert record[0].shape == (3, 2) and (record[0] == 1.0).all()
    with pytest.raises(DataError, match="v73.mat.*'missing'"):
        load_mat(path, ("missing",))
