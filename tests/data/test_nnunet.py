"""nnU-Net v2 raw dataset folders: the phantom writer, the reader's parity with the Decathlon
reader, multi-channel cases and the command line."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from losslab.cli.main import main
from losslab.data import (
    PHANTOM_CLASSES,
    DataConfig,
    PatchSampler,
    check_dataset_folder,
    inspect_decathlon,
    inspect_folder,
    load_dataset,
    volumes,
    write_phantom_decathlon,
    write_phantom_nnunet,
)
from losslab.data.preprocess import PreprocessConfig, normalize

from .helpers import PHANTOM_SHAPE, tiny_case


def test_phantom_writer_writes_the_decathlon_cases_in_nnunet_layout(tmp_path):
    folder = write_phantom_nnunet(tmp_path / "raw", cases=2, shape=PHANTOM_SHAPE, seed=3)
    assert folder == tmp_path / "raw" / "Dataset990_LosslabPhantom"
    manifest = json.loads((folder / "dataset.json").read_text())
    assert manifest["channel_names"] == {"0": "CT"}
    assert manifest["labels"] == {name: i for i, name in enumerate(PHANTOM_CLASSES)}
    assert (manifest["numTraining"], manifest["file_ending"]) == (2, ".nii.gz")
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        "case_000_0000.nii.gz",
        "case_001_0000.nii.gz",
    ]
    decathlon = tmp_path / "msd"
    write_phantom_decathlon(decathlon, cases=2, shape=PHANTOM_SHAPE, seed=3)
    for ours, theirs in (
        (folder / "imagesTr" / "case_001_0000.nii.gz", decathlon / "imagesTr" / "case_001.nii.gz"),
        (folder / "labelsTr" / "case_001.nii.gz", decathlon / "labelsTr" / "case_001.nii.gz"),
    ):
        a, b = nib.load(ours), nib.load(theirs)
        np.testing.assert_array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))
        np.testing.assert_array_equal(a.affine, b.affine)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"dataset_id": 1000}, "dataset_id must be an integer in 1..999"),
        ({"name": "my data"}, "no spaces"),
        ({"cases": 0}, "cases must be at least 1"),
    ],
)
def test_phantom_writer_refuses_bad_settings(tmp_path, settings, match):
    with pytest.raises(ValueError, match=match):
        write_phantom_nnunet(tmp_path, **{"cases": 1, "shape": (8, 8, 8), **settings})


# --- parity with the Decathlon reader ------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"normalization": "none"},
        {"spacing": (3.0, 2.5, 2.0), "crop_foreground": True, "cases": 3},
    ],
    ids=["as-stored", "resampled-cropped"],
)
def test_reads_the_same_cases_as_the_decathlon_reader(phantom_folder, nnunet_folder, settings):
    ours = load_dataset("nnunet", data_dir=nnunet_folder, use_cache=False, **settings)
    theirs = load_dataset("decathlon", data_dir=phantom_folder, use_cache=False, **settings)
    assert len(ours) == len(theirs) == settings.get("cases", 4)
    for a, b in zip(ours.images, theirs.images, strict=True):
        assert a.shape[0] == 1
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(ours.labels, theirs.labels, strict=True):
        assert torch.equal(a, b)
    assert ours.class_names == theirs.class_names == tuple(PHANTOM_CLASSES)
    assert (ours.spacing, ours.spacings) == (theirs.spacing, theirs.spacings)
    assert ours.case_ids == theirs.case_ids and ours.splits == theirs.splits
    assert ours.fingerprint == theirs.fingerprint  # same voxels, same settings


def test_inspects_the_same_cases_as_the_decathlon_reader(phantom_folder, nnunet_folder):
    ours = inspect_folder(nnunet_folder, source="nnunet")
    theirs = inspect_decathlon(phantom_folder)
    assert ours.ok and theirs.ok and ours.manifest.layout == "nnunet"
    assert [(c.case_id, c.shape, c.spacing) for c in ours.cases] == [
        (c.case_id, c.shape, c.spacing) for c in theirs.cases
    ]
    assert torch.equal(ours.case_class_counts(), theirs.case_class_counts())
    np.testing.assert_equal(ours.class_table(), theirs.class_table())  # NaN shares equal too


def test_check_dataset_folder_reads_an_nnunet_folder(nnunet_folder, phantom_folder):
    manifest = check_dataset_folder(nnunet_folder, source="nnunet", cases=3)
    assert manifest.class_names == tuple(PHANTOM_CLASSES) and len(manifest.cases) == 4
    assert manifest.cases[2].images == (nnunet_folder / "imagesTr" / "case_002_0000.nii.gz",)
    with pytest.raises(ValueError, match="data_dir is required for the 'nnunet' source"):
        DataConfig(source="nnunet")
    with pytest.raises(ValueError, match="nnU-Net v2 raw dataset.*--data nnunet"):
        check_dataset_folder(nnunet_folder)  # read as a Decathlon folder
    with pytest.raises(ValueError, match="Decathlon folder.*--data decathlon"):
        check_dataset_folder(phantom_folder, source="nnunet")


def test_the_dataset_key_lists_the_files_of_each_case(tmp_path, make_nnunet):
    root = make_nnunet([tiny_case(i) for i in range(3)])
    moved = tmp_path / "elsewhere"
    (root / "imagesTr").rename(moved)
    listing = {
        f"c{i}": {"images": [str(moved / f"c{i}_0000.nii.gz")], "label": f"labelsTr/c{i}.nii.gz"}
        for i in (2, 0, 1)
    }
    manifest = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**manifest, "dataset": listing}))
    dataset = load_dataset("nnunet", data_dir=root, use_cache=False, normalization="none")
    assert dataset.case_ids == ["c2", "c0", "c1"]  # in the listed order
    np.testing.assert_array_equal(dataset.images[1][0].numpy(), tiny_case(0)[0])


# --- several channels ----------------------------------------------------------------------


def _two_channel_cases(n: int) -> list[tuple[list[np.ndarray], np.ndarray]]:
    cases = []
    for i in range(n):
        ct, label = tiny_case(i, shape=(12, 10, 9))
        mr = np.random.default_rng(100 + i).uniform(0.0, 900.0, ct.shape).astype(np.float32)
        cases.append(([ct, mr], label))
    return cases


def test_channels_become_input_channels_each_normalised_by_its_modality(make_nnunet, monkeypatch):
    cases = _two_channel_cases(3)
    root = make_nnunet(cases)
    dataset = load_dataset("nnunet", data_dir=root, use_cache=False)
    assert dataset.num_channels == 2
    auto = PreprocessConfig()
    for (channels, label), image, loaded in zip(cases, dataset.images, dataset.labels):
        assert tuple(image.shape) == (2, 12, 10, 9)
        expected_ct = normalize(channels[0], True, auto)  # CT: the Hounsfield window
        expected_mr = normalize(channels[1], False, auto)  # T2: z-score of nonzero voxels
        np.testing.assert_allclose(image[0].numpy(), expected_ct, rtol=0, atol=1e-6)
        np.testing.assert_allclose(image[1].numpy(), expected_mr, rtol=0, atol=1e-5)
        assert torch.equal(loaded, torch.from_numpy(label.astype(np.int64)))
    finer = load_dataset("nnunet", data_dir=root, use_cache=False, spacing=(0.5, 0.5, 0.5))
    assert tuple(finer.images[0].shape) == (2, 24, 20, 18)
    written = load_dataset("nnunet", data_dir=root)
    monkeypatch.setattr(volumes, "load_nifti", lambda path: pytest.fail(f"read {path}"))
    cached = load_dataset("nnunet", data_dir=root)  # from the preprocessing cache
    assert written.fingerprint == cached.fingerprint == dataset.fingerprint
    assert all(torch.equal(a, b) for a, b in zip(cached.images, dataset.images, strict=True))


def test_patches_of_several_channels_come_from_the_same_voxels(make_nnunet):
    root = make_nnunet(_two_channel_cases(3))
    dataset = load_dataset(
        "nnunet", data_dir=root, use_cache=False, normalization="none", split_fractions=(1, 0, 0)
    )
    sampler = PatchSampler(dataset, patch_size=(6, 6, 6), batch_size=4, mode="uniform", seed=1)
    case = torch.tensor([0, 2, 1, 2])
    origin = torch.tensor([[0, 0, 0], [6, 4, 3], [3, 2, 1], [1, 1, 1]])
    images, labels = sampler._gather_slices(case, origin)
    taken_images, taken_labels = sampler._gather_take(case, origin)  # the accelerator's path
    assert tuple(images.shape) == (4, 2, 6, 6, 6)
    assert torch.equal(images, taken_images) and torch.equal(labels, taken_labels)
    for b in range(4):
        x, y, z = origin[b].tolist()
        case_index = sampler.case_indices[int(case[b])]
        window = dataset.images[case_index][:, x : x + 6, y : y + 6, z : z + 6]
        assert torch.equal(images[b], window)
    drawn, _ = sampler.sample()
    assert tuple(drawn.shape) == (4, 2, 6, 6, 6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_patches_of_several_channels_on_the_gpu_make_no_host_sync(make_nnunet):
    root = make_nnunet(_two_channel_cases(3))
    dataset = load_dataset("nnunet", data_dir=root, use_cache=False, split_fractions=(1, 0, 0))
    sampler = PatchSampler(dataset, patch_size=(6, 6, 6), batch_size=4, device="cuda")
    on_host = PatchSampler(dataset, patch_size=(6, 6, 6), batch_size=4)
    sampler.sample()  # warm-up
    torch.cuda.set_sync_debug_mode("error")
    try:
        images, labels = sampler.sample()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert tuple(images.shape) == (4, 2, 6, 6, 6) and images.is_cuda
    case = torch.tensor([0, 2, 1, 2])
    origin = torch.tensor([[0, 0, 0], [6, 4, 3], [3, 2, 1], [1, 1, 1]])
    taken = sampler._gather_take(case.cuda(), origin.cuda())
    sliced = on_host._gather_slices(case, origin)
    assert torch.equal(taken[0].cpu(), sliced[0]) and torch.equal(taken[1].cpu(), sliced[1])


# --- the command line ----------------------------------------------------------------------


def test_phantom_in_nnunet_layout_then_inspect(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    raw = tmp_path / "nnUNet_raw"
    command = ["data", "phantom", "--layout", "nnunet", "--out", str(raw), "--cases", "3"]
    assert main([*command, "--shape", "16", "--dataset-id", "42", "--name", "Tiny"]) == 0
    folder = raw / "Dataset042_Tiny"
    assert str(folder) in capsys.readouterr().out.replace("\n", "")
    assert main(["data", "inspect", "--data", "nnunet", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "nnU-Net v2 raw layout" in text and "no problems found" in text
    assert "case_002" in text and "16x16x16" in text and "liver" in text
    (folder / "labelsTr" / "case_001.nii.gz").unlink()
    assert main(["data", "inspect", "--data", "nnunet", str(folder)]) == 1
    text = capsys.readouterr().out.replace("\n", "")
    assert f"{folder / 'labelsTr' / 'case_001.nii.gz'}: file is missing" in text
    assert main(["data", "inspect", str(folder)]) == 1  # read as a Decathlon folder
    assert "--data nnunet" in capsys.readouterr().out.replace("\n", "")


def test_train_takes_an_nnunet_folder_from_its_flags(nnunet_folder):
    from losslab.cli.data import data_config_from_args
    from losslab.cli.main import build_parser
    from losslab.data import build_dataset

    args = build_parser().parse_args(
        ["train", "--data", "nnunet", "--data-dir", str(nnunet_folder), "--cases", "3"]
    )
    config = data_config_from_args(args)
    assert (config.source, config.data_dir, config.cases) == ("nnunet", str(nnunet_folder), 3)
    assert build_dataset(config).case_ids == ["case_000", "case_001", "case_002"]


def test_phantom_refuses_nnunet_flags_for_the_decathlon_layout(tmp_path, capsys):
    assert main(["data", "phantom", "--out", str(tmp_path), "--dataset-id", "3"]) == 2
    assert "--dataset-id: only with --layout nnunet" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_a_study_file_reads_an_nnunet_folder(tmp_path, nnunet_folder):
    from losslab.config import ConfigError
    from losslab.search.study_config import load_study

    study = {
        "study": "nnunet",
        "budget": {"trials": 2},
        "space": {"loss": {"dice": {}, "ce": {}}},
        "data": {"source": "nnunet", "data_dir": str(nnunet_folder), "cases": 3},
    }
    path = tmp_path / "study.yaml"
    path.write_text(json.dumps(study))  # JSON is YAML
    config = load_study(path)
    assert (config.data.source, config.data.data_dir) == ("nnunet", str(nnunet_folder))
    study["data"]["data_dir"] = str(tmp_path / "Dataset001_Missing")
    path.write_text(json.dumps(study))
    with pytest.raises(ConfigError, match="dataset folder does not exist") as info:
        load_study(path)
    assert info.value.where == f"{path}: data.data_dir"


def test_a_network_trains_on_two_channels(make_nnunet):
    from losslab.candidate import Candidate
    from losslab.training import TrainConfig, train

    cases = []
    for i in range(3):
        image, label = tiny_case(i, shape=(16, 16, 16))
        cases.append(([image, np.abs(image) + 1.0], label))
    dataset = load_dataset("nnunet", data_dir=make_nnunet(cases), use_cache=False)
    config = TrainConfig(
        model="unet3d", model_size="tiny", epochs=1, steps_per_epoch=2, batch_size=2,
        patch_size=(16, 16, 16), device="cpu", hd95=False,
    )  # fmt: skip
    result = train(Candidate.from_loss("dice"), dataset, config)
    assert result.ok, result.reason  # a one-channel network would fail on the first batch
