"""Plain networks of the degradation experiment: He, Zhang, Ren & Sun, "Deep Residual Learning for
Image Recognition", CVPR 2016, sections 4.1 (ImageNet) and 4.2 (CIFAR-10).

A plain network has the layers of the residual network of the same depth -- the same
convolutions, batch norms, pools and classifier -- and no shortcuts: no identity is added and
no projection is built. Deeper plain networks train *worse* than shallower ones (the paper's
Figures 1, 4 and 6: plain-34 above plain-18, plain-56 above plain-20 in training error), while
their residual counterparts do not: this "degradation" is what shortcuts fix.

No new builder: the table below names the ResNet builders
(:func:`~cnnkit.models.classification.resnet.resnet`,
:func:`~cnnkit.models.classification.resnet_cifar.resnet_cifar`) with ``shortcut="none"``.

Parameter counts, at the default 1000 (ImageNet) or 10 (CIFAR) classes:

- ``plain20_cifar`` .. ``plain56_cifar`` have exactly the counts of ``resnet20_cifar`` ..
  ``resnet56_cifar``, whose option A shortcuts (zero-padded identity) are parameter-free;
- ``plain18``/``plain34`` have the counts of ``resnet18``/``resnet34`` minus their three
  projection shortcuts (torchvision's option B, 1x1 convolution + batch norm, at the first block
  of layer2, layer3, layer4): 64*128 + 2*128 + 128*256 + 2*256 + 256*512 + 2*512 = 173,824.
  The paper's plain/residual comparison (its Table 2) uses option A for the residual nets, so
  there the two also have the same count; ``resnet(..., shortcut="A")`` builds that residual
  network (11,515,688 and 21,623,848 parameters).

Differences from the paper: those of the zoo's ResNets (torchvision layout and initialisation
for the ImageNet nets, see :mod:`~cnnkit.models.classification.resnet`); the plain nets use the
same He et al. initialisation, as in the paper.
"""

from __future__ import annotations

from cnnkit.models.classification.resnet import RESNET_PAPER, resnet
from cnnkit.models.classification.resnet_cifar import resnet_cifar
from cnnkit.models.registry import register

PROJECTIONS_RESNET18_34 = 173_824  # the three 1x1 conv + BN shortcuts of resnet18/34

# name: (builder, options, default input size, classes, parameter count, residual twin).
# Counts from building the models; CIFAR ones equal the residual twins', ImageNet ones are the
# twin's count minus PROJECTIONS_RESNET18_34.
PLAIN_VARIANTS: dict[str, tuple] = {
    "plain18": (resnet, {"block": "basic", "depths": (2, 2, 2, 2)}, (3, 224, 224), 1000,
                11_515_688, "resnet18"),
    "plain34": (resnet, {"block": "basic", "depths": (3, 4, 6, 3)}, (3, 224, 224), 1000,
                21_623_848, "resnet34"),
    "plain20_cifar": (resnet_cifar, {"depth": 20}, (3, 32, 32), 10, 269_722, "resnet20_cifar"),
    "plain32_cifar": (resnet_cifar, {"depth": 32}, (3, 32, 32), 10, 464_154, "resnet32_cifar"),
    "plain44_cifar": (resnet_cifar, {"depth": 44}, (3, 32, 32), 10, 658_586, "resnet44_cifar"),
    "plain56_cifar": (resnet_cifar, {"depth": 56}, (3, 32, 32), 10, 853_018, "resnet56_cifar"),
}

for _name, (_builder, _options, _size, _classes, _count, _twin) in PLAIN_VARIANTS.items():
    _section = "4.1 (ImageNet)" if _classes == 1000 else "4.2 (CIFAR-10)"
    register(_name, _builder, task="classification", paper=RESNET_PAPER, year=2016,
             input_size=_size, num_params=_count, num_classes=_classes,
             notes=(f"plain network of section {_section}: the layers of {_twin} without any "
                    "shortcut (shortcut='none')"
                    + (f"; {_twin} minus its 3 projection shortcuts ({PROJECTIONS_RESNET18_34:,} "
                       "parameters)" if _classes == 1000 else
                       f"; the same count as {_twin} (option A shortcuts have no parameters)")),
             shortcut="none", **_options)
