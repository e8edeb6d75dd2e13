"""classification networks; each family module registers its variants on import."""
from cnnkit.models.classification import alexnet, lenet, vgg  # noqa: F401
from cnnkit.models.classification import plain, resnet, resnet_cifar  # noqa: F401
from cnnkit.models.classification import densenet, googlenet  # noqa: F401
from cnnkit.models.classification import mobilenet_v1, mobilenet_v2, shufflenet, xception  # noqa: F401
from cnnkit.models.classification import smallvgg  # noqa: F401
