#pragma once

// Precompiled for the core targets: the LibTorch headers dominate compile time.
#include <ATen/ATen.h>
#include <torch/nn/functional/padding.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/types.h>

#include <QByteArray>
#include <QString>

#include <map>
#include <memory>
#include <string>
#include <vector>
