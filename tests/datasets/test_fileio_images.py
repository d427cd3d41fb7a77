"""read_image / write_image / load_mat: RGB order, channel handling, clear errors."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

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


def _png_claiming(path, width: int, height: int) -> None:
    """A tiny valid PNG whose IHDR (CRC fixed up) claims ``width`` x ``height`` pixels."""
    import struct
    import zlib

    write_image(path, _pattern(4, 4))
    data = bytearray(path.read_bytes())
    ihdr = 8 + 4  # signature, then the IHDR chunk's length field
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 4 + 13]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))


def test_png_over_opencv_pixel_limit_names_the_file(tmp_path):
    path = tmp_path / "huge.png"
    _png_claiming(path, 100_000, 100_000)  # 10^10 pixels: over CV_IO_MAX_IMAGE_PIXELS
    with pytest.raises(DataError, match=r"huge.png: .*OpenCV's limit.*OPENCV_IO_MAX_IMAGE_PIXELS"):
        read_image(path)


def _read_in_subprocess(path) -> subprocess.CompletedProcess:
    """read_image(path) in a child with bounded memory and time (today's code hangs on a FIFO
    and reads /dev/zero until memory runs out)."""

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    code = (
        "import sys\nfrom animalpose.datasets.fileio import DataError, read_image\n"
        "try:\n    read_image(sys.argv[1])\nexcept DataError as err:\n"
        "    print(err, file=sys.stderr); sys.exit(3)\n"
    )
    try:
        return subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            preexec_fn=limit_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"read_image({path}) hangs")


def test_fifo_and_link_to_dev_zero_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.jpg"
    zero.symlink_to("/dev/zero")
    for path in (fifo, zero):
        result = _read_in_subprocess(path)
        assert result.returncode == 3, result.stderr[-2000:]
        assert result.stderr.startswith(f"{path}: image is not a regular file")


def test_load_mat_refuses_special_files(tmp_path):
    zero = tmp_path / "zero.mat"
    zero.symlink_to("/dev/zero")
    with pytest.raises(DataError, match="zero.mat: MATLAB file is not a regular file"):
        load_mat(zero, ("ranges",))


def test_load_mat_v73_reference_cycles_name_the_file(tmp_path):
    group = tmp_path / "group.mat"
    with h5py.File(group, "w") as f:
        landmarks = f.create_group("landmarks")
        landmarks["inner"] = landmarks  # a hard link to itself: a struct holding itself
    cell = tmp_path / "cell.mat"
    with h5py.File(cell, "w") as f:
        landmarks = f.create_dataset("landmarks", (1, 1), dtype=h5py.ref_dtype)
        landmarks[0, 0] = landmarks.ref  # a cell whose entry is the cell itself
    for path in (group, cell):
        with pytest.raises(DataError, match=rf"{path.name}: .*refers back to itself"):
            load_mat(path, ("landmarks",))


def test_image_size_reads_the_header_only(tmp_path):
    from animalpose.datasets.fileio import image_size

    write_image(tmp_path / "a.png", _pattern(24, 32))
    write_image(tmp_path / "a.jpg", _pattern(24, 32))
    cv2.imwrite(str(tmp_path / "p.jpg"), _pattern(5, 7), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert image_size(tmp_path / "a.png") == image_size(tmp_path / "a.jpg") == (32, 24)
    assert image_size(tmp_path / "p.jpg") == (7, 5)
    _png_claiming(tmp_path / "huge.png", 100_000, 90_000)
    assert image_size(tmp_path / "huge.png") == (100_000, 90_000)  # nothing decoded
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00")
    with pytest.raises(DataError, match="junk.jpg: cannot read the image size"):
        image_size(tmp_path / "junk.jpg")
    with pytest.raises(DataError, match="gone.jpg: image not found"):
        image_size(tmp_path / "gone.jpg")


def test_image_files_over_the_size_bound_are_refused(tmp_path, monkeypatch):
    import animalpose.datasets.fileio as fileio

    write_image(tmp_path / "a.png", _pattern())
    monkeypatch.setattr(fileio, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(DataError, match="a.png: image is larger than 100 bytes"):
        read_image(tmp_path / "a.png")
