"""explain_layer on the decks' cases (exact numbers) and its grammar errors; explain_model on
AlexNet and VGG16 against the decks' observations, with the analyzer's figures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnkit.errors import CnnkitError
from cnnkit.explain import (
    GRAMMAR,
    conv_matrix,
    explain_layer,
    explain_model,
    parse_layer,
)


def test_the_decks_7x7_input_3x3_filter() -> None:
    stride1 = explain_layer("conv k3 on 7x7")
    assert "(7 - 3 + 2*0)/1 + 1 = 4/1 + 1 = 5" in stride1 and "the output is 1x5x5" in stride1
    stride2 = explain_layer("conv k3 s2 on 7x7")
    assert "(7 - 3 + 2*0)/2 + 1 = 4/2 + 1 = 3" in stride2 and "the output is 1x3x3" in stride2
    assert "illegal" not in stride2 and "never used" not in stride2
    stride3 = explain_layer("conv k3 s3 on 7x7")
    assert "(7 - 3 + 2*0)/3 + 1 = 4/3 + 1 = 2.33: fractions are illegal" in stride3
    assert "don't fit (4 is not divisible by 3)" in stride3
    assert "PyTorch takes the floor instead: floor(4/3) + 1 = 2." in stride3
    assert "input row and column 6 are never used" in stride3
    assert "To fit: padding 1 ((7 - 3 + 2*1)/3 + 1 = 3) or stride 2 (4/2 + 1 = 3)." in stride3
    assert "the output is 1x2x2" in stride3


def test_conv_k3_s2_p1_on_7x7() -> None:
    text = explain_layer("conv k3 s2 p1 on 7x7")
    assert "(7 - 3 + 2*1)/2 + 1 = 6/2 + 1 = 4" in text and "the output is 1x4x4" in text
    assert "sees a 3x3 window" in text and "overlap by 1" in text and "-1..1" in text
    assert "9 weights + 1 bias = 10 parameters" in text and "16 values = 144" in text
    assert "of which 100 use real input pixels" in text
    assert "a 9 x 16 matrix (F.unfold)" in text and "a 1 x 9 matrix (C_out x C_in*K*K)" in text
    assert "Convolution matrix M (16 x 49)" in text
    rows = [line for line in text.splitlines() if line.startswith("  y[")]
    assert len(rows) == 16
    assert rows[0].split()[1:10] == ["e", "f", ".", ".", ".", ".", ".", "h", "i"]
    # the printed matrix is conv_matrix with the weights 1..9 named a..i
    m = conv_matrix(torch.arange(1.0, 10.0).view(1, 1, 3, 3), (7, 7), 2, 1).long()
    for line, row in zip(rows, m.tolist()):
        assert line.split()[1:] == ["abcdefghi"[v - 1] if v else "." for v in row]


def test_conv_k5_s2_p0_on_8x8() -> None:
    text = explain_layer("conv k5 s2 p0 on 8x8")
    assert "(8 - 5 + 2*0)/2 + 1 = 3/2 + 1 = 2.50: fractions are illegal" in text
    assert "floor(3/2) + 1 = 2" in text and "input row and column 7 are never used" in text
    assert "To fit: stride 1 (3/1 + 1 = 4)." in text
    assert "Convolution matrix M (4 x 64)" in text


def test_the_decks_transposed_3x3_to_5x5() -> None:
    text = explain_layer("convT k3 s2 p1 on 3x3")
    assert "(3 - 1)*2 - 2*1 + 3 = 5" in text and "the output is 1x5x5" in text
    assert "the transpose of conv k3 s2 p1 on 5x5" in text
    assert "(5 - 3 + 2*1)/2 + 1 = 4/2 + 1 = 3" in text
    assert "maps sizes 5..6 all to 3: the output padding (op0..op1) picks one; op0 gives 5" in text
    assert "insert S - 1 = 1 zero between neighbouring inputs (3x3 -> 5x5)" in text
    assert "D(K - 1) - P = 1*(3 - 1) - 1 = 1 zero (-> 7x7)" in text
    assert "along a row: 1 2 1 2 1" in text and "so by 1, 2, 4 inputs in all" in text
    assert "9 multiply-adds per input value x 9 values = 81, of which 49" in text
    assert "9 x 9 columns" in text and "col2im (F.fold)" in text
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("  y[")]
    m = conv_matrix(torch.arange(1.0, 10.0).view(1, 1, 3, 3), (5, 5), 2, 1).long()
    assert rows == [["abcdefghi"[v - 1] if v else "." for v in row] for row in m.T.tolist()]
    assert rows[6] == ["i", "g", ".", "c", "a", ".", ".", ".", "."]  # y[1,1]: 4 inputs


def test_output_padding_dilation_and_channels() -> None:
    text = explain_layer("convT k3 s2 p1 op1 on 3x3")
    assert "(3 - 1)*2 - 2*1 + 3 + 1 = 6" in text and "op1 gives 6" in text
    text = explain_layer("conv k3 d2 c3->8 on 9x9")
    assert "K_eff = D(K - 1) + 1 = 2*(3 - 1) + 1 = 5" in text
    assert "(9 - 5 + 2*0)/1 + 1 = 4/1 + 1 = 5" in text and "the output is 8x5x5" in text
    assert "8*3*3*3 = 216 weights + 8 biases = 224 parameters" in text
    assert "a 27 x 25 matrix" in text and "a 8 x 27 matrix" in text
    assert "printed for 1 channel" in text


def test_the_decks_alexnet_layers() -> None:
    conv1 = explain_layer("conv k11 s4 c3->96 on 227x227")
    assert "(227 - 11 + 2*0)/4 + 1 = 216/4 + 1 = 55" in conv1
    assert "96*3*11*11 = 34,848 weights + 96 biases = 34,944 parameters" in conv1
    pool1 = explain_layer("maxpool k3 s2 c96->96 on 55x55")
    assert "(55 - 3 + 2*0)/2 + 1 = 52/2 + 1 = 27" in pool1 and "96x27x27" in pool1
    assert "no learnable parameters" in pool1


def test_rectangular_input() -> None:
    text = explain_layer("conv k1 s2 on 5x4")
    assert "height: (5 - 1 + 2*0)/2 + 1 = 4/2 + 1 = 3" in text
    assert "width: (4 - 1 + 2*0)/2 + 1 = 3/2 + 1 = 2.50" in text
    assert "the output is 1x3x2" in text


def test_grammar_parse() -> None:
    spec = parse_layer("ConvT k4 s2 p1 op1 c8->3 on 16x12")
    assert (spec.op, spec.kernel, spec.stride, spec.padding, spec.output_padding) == \
        ("convT", 4, 2, 1, 1)
    assert (spec.in_channels, spec.out_channels, spec.height, spec.width) == (8, 3, 16, 12)
    assert parse_layer("maxpool k2 on 8").stride == 2  # pooling: stride defaults to K


@pytest.mark.parametrize("spec, token", [
    ("conv x3 on 7x7", "'x3'"), ("pool k3 on 7x7", "'pool'"), ("conv k3 s2 p1 7x7", "'7x7'"),
    ("conv k3 on 7y7", "'7y7'"), ("conv k3 op1 on 7x7", "'op1'"), ("conv k3 s0 on 7x7", "'s0'"),
    ("conv s2 on 7x7", "missing kernel"), ("conv k3 k5 on 7x7", "'k5'"),
    ("convT k3 s2 op2 on 3x3", "'op2'"), ("avgpool k3 d2 on 7x7", "'d2'"),
    ("maxpool k3 c3->8 on 7x7", "'c3->8'"), ("", "non-empty"),
])
def test_bad_layer_specs(spec, token) -> None:
    with pytest.raises(CnnkitError) as info:
        explain_layer(spec)
    message = str(info.value)
    assert token in message and "\n" not in message
    assert spec == "" or GRAMMAR in message


def test_kernel_larger_than_input() -> None:
    with pytest.raises(CnnkitError, match="kernel extent 9 is larger than the padded input"):
        explain_layer("conv k9 on 7x7")


# ---------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def vgg16_text() -> str:
    return explain_model("vgg16", (3, 224, 224))


def test_vgg16_memory_is_in_the_early_conv_layers(vgg16_text) -> None:
    # the decks' table: conv1_1 and conv1_2 write 224*224*64 = 3.2M values each
    assert "15,112,168 activation values = 60.45MB" in vgg16_text
    assert "the input adds 150,528" in vgg16_text
    assert "Largest: features.0 (Conv2d, 1x64x224x224), 3,211,264 values (21.2%)" in vgg16_text
    assert ("the first 3 of them (up to features.5, 1x128x112x112, with the layers between) "
            "hold 8,830,976 (58.4%)") in vgg16_text
    assert "-> most of the memory is in the early conv layers" in vgg16_text


def test_vgg16_parameters_are_in_the_first_fc_layers(vgg16_text) -> None:
    # the decks' FC rows: 7*7*512*4096 + 4096*4096 + 4096*1000 weights, plus biases
    fc = 102_760_448 + 16_777_216 + 4_096_000 + 4_096 + 4_096 + 1_000
    assert f"the 3 fully connected layers hold {fc:,} (89.4%)" in vgg16_text
    assert "Parameters: 138,357,544" in vgg16_text
    assert ("Largest: classifier.0 (Linear, 1x4096, the first fully connected layer), "
            "102,764,544 (74.3%)") in vgg16_text
    assert "-> most parameters are in the fully connected layers" in vgg16_text


def test_vgg16_compute_is_in_the_conv_layers(vgg16_text) -> None:
    assert "Compute: 15.47G multiply-adds (15,470,264,320" in vgg16_text
    assert "the 13 conv layers do 15,346,630,656 (99.2%)" in vgg16_text.lower()
    assert "-> nearly all compute is in the conv layers" in vgg16_text


@pytest.mark.parametrize("name, size, params, fc_share, conv_macs", [
    ("alexnet_paper", (3, 227, 227), "60,965,224", "58,631,144 (96.2%)", "665,784,864 (91.9%)"),
    ("alexnet", None, "61,100,840", "58,631,144 (96.0%)", "655,566,528 (91.8%)"),
])
def test_alexnet_observations(name, size, params, fc_share, conv_macs) -> None:
    text = explain_model(name, size)
    assert f"Parameters: {params}" in text
    assert f"the 3 fully connected layers hold {fc_share}" in text
    assert f"the 5 conv layers do {conv_macs}" in text.lower()
    assert "the first 2 of them" in text
    # the decks: memory in the early conv layers, nearly all parameters in the FC layers,
    # most operations in the conv layers
    assert "-> most of the memory is in the early conv layers" in text
    assert "-> nearly all parameters are in the fully connected layers" in text
    assert "-> nearly all compute is in the conv layers" in text


def test_explain_model_on_a_module_and_errors() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(8 * 8 * 8, 10))
    text = explain_model(model, 8)
    assert text.startswith("Sequential on a 3x8x8 input")
    assert "The 1 conv layer holds 224 (4.2%); the 1 fully connected layer holds 5,130" in text
    assert "The 1 conv layer outputs 512 (49.5%)." in text
    for call, word in [(lambda: explain_model("no_such_net", 224), "unknown model"),
                       (lambda: explain_model(model), "input_size is required"),
                       (lambda: explain_model(model, (3, 0, 8)), "input_size"),
                       (lambda: explain_model(42, 224), "name_or_model")]:
        with pytest.raises(CnnkitError) as info:
            call()
        assert word in str(info.value) and "\n" not in str(info.value)
