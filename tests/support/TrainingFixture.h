#pragma once

// Builds what a training test needs: an image folder (drawn shapes, .txt captions or file-name
// captions, any sizes, optionally a corrupt file) and a run file for the consistent tiny SD1
// model of the reference data (full/tiny_sd1.safetensors, VAE factor 2, text width 32).

#include "support/TestSupport.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QString>

#include <vector>

namespace studio::test {

struct ImageSpec
{
    QString fileName; // "001-red ball.png"
    int width = 64;
    int height = 64;
    QString caption; // written to NAME.txt when not empty
};

// A picture that differs per image (colour and position from the index), so that latents and
// losses differ between images.
inline void writeTestImage(const QString& path, int width, int height, int index)
{
    cv::Mat image(height, width, CV_8UC3,
                  cv::Scalar(40 + 50 * (index % 4), 90 + 30 * (index % 3), 200 - 40 * (index % 5)));
    const cv::Point centre(width / 3 + (index * 7) % (width / 2), height / 2);
    cv::circle(image, centre, std::max(4, std::min(width, height) / 4),
               cv::Scalar(250 - 60 * (index % 3), 30 * index % 255, 120), cv::FILLED);
    cv::rectangle(image, cv::Point(2, 2), cv::Point(width / 4, height / 5),
                  cv::Scalar(10, 220, 30 * (index % 7)), cv::FILLED);
    QVERIFY2(cv::imwrite(path.toStdString(), image), qPrintable(path));
}

inline void writeImageFolder(const QString& folder, const std::vector<ImageSpec>& images,
                             bool withCorruptFile)
{
    QVERIFY(QDir().mkpath(folder));
    int index = 0;
    for (const ImageSpec& spec : images) {
        const QString path = QDir(folder).filePath(spec.fileName);
        writeTestImage(path, spec.width, spec.height, index++);
        if (!spec.caption.isEmpty()) {
            QFile caption(QDir(folder).filePath(spec.fileName.section(QLatin1Char('.'), 0, 0) +
                                                QStringLiteral(".txt")));
            QVERIFY(caption.open(QIODevice::WriteOnly));
            caption.write(spec.caption.toUtf8());
        }
    }
    if (withCorruptFile) {
        QFile corrupt(QDir(folder).filePath(QStringLiteral("broken.png")));
        QVERIFY(corrupt.open(QIODevice::WriteOnly));
        corrupt.write("\x89PNG\r\n\x1a\n this is not really an image");
    }
}

// Four 64x64 images with captions, the default dataset of the training tests.
inline std::vector<ImageSpec> squareImages(int count = 4)
{
    const char* captions[] = {"a red circle, green square", "a blue circle, small square",
                              "a pink circle, tall square", "an orange circle, wide square",
                              "a grey circle, no square",   "a teal circle, two squares"};
    std::vector<ImageSpec> specs;
    for (int i = 0; i < count; ++i) {
        specs.push_back(
            {QStringLiteral("img%1.png").arg(i), 64, 64, QString::fromLatin1(captions[i % 6])});
    }
    return specs;
}

// A run on the tiny model: 64x64 pixels (32x32 latents), a hypernetwork for both of its
// attention widths, constant learning rate 1e-3, DDIM previews of 3 steps.
inline QJsonObject tinyRunJson(const QString& datasetFolder, const QString& outputFolder)
{
    QJsonObject model{
        {QStringLiteral("checkpoint"), referencePath(QStringLiteral("full/tiny_sd1.safetensors"))},
        {QStringLiteral("tokenizer"),
         referencePath(QStringLiteral("tokenizer/bpe_simple_vocab_16e6.txt.gz"))},
    };
    QJsonObject create{
        {QStringLiteral("sizes"), QJsonArray{32, 64}},
        {QStringLiteral("layer_structure"), QStringLiteral("1, 2, 1")},
        {QStringLiteral("activation"), QStringLiteral("relu")},
        {QStringLiteral("weight_init"), QStringLiteral("KaimingNormal")},
    };
    QJsonObject hypernetwork{{QStringLiteral("name"), QStringLiteral("tinyhn")},
                             {QStringLiteral("create"), create}};
    QJsonObject dataset{{QStringLiteral("folder"), datasetFolder},
                        {QStringLiteral("template"), QStringLiteral("style_filewords")},
                        {QStringLiteral("width"), 64},
                        {QStringLiteral("height"), 64}};
    QJsonObject learningRate{{QStringLiteral("schedule"), QStringLiteral("constant")},
                             {QStringLiteral("rate"), 1e-3}};
    QJsonObject training{{QStringLiteral("steps"), 10},
                         {QStringLiteral("batch_size"), 1},
                         {QStringLiteral("seed"), 7},
                         {QStringLiteral("learning_rate"), learningRate}};
    QJsonObject preview{{QStringLiteral("sampler"), QStringLiteral("ddim")},
                        {QStringLiteral("steps"), 3},
                        {QStringLiteral("cfg_scale"), 5.0},
                        {QStringLiteral("seed"), 11}};
    QJsonObject output{{QStringLiteral("folder"), outputFolder},
                       {QStringLiteral("save_every"), 5},
                       {QStringLiteral("preview_every"), 0}};
    return QJsonObject{{QStringLiteral("version"), 1},
                       {QStringLiteral("model"), model},
                       {QStringLiteral("hypernetwork"), hypernetwork},
                       {QStringLiteral("dataset"), dataset},
                       {QStringLiteral("training"), training},
                       {QStringLiteral("preview"), preview},
                       {QStringLiteral("output"), output}};
}

// json[section][key] = value (section "training.learning_rate" nests once more).
inline void setField(QJsonObject& json, const QString& section, const QString& key,
                     const QJsonValue& value)
{
    const QStringList path = section.split(QLatin1Char('.'));
    QJsonObject outer = json.value(path[0]).toObject();
    if (path.size() == 1) {
        outer.insert(key, value);
    } else {
        QJsonObject inner = outer.value(path[1]).toObject();
        inner.insert(key, value);
        outer.insert(path[1], inner);
    }
    json.insert(path[0], outer);
}

inline QString writeJson(const QString& path, const QJsonObject& json)
{
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly)) {
        return QString();
    }
    file.write(QJsonDocument(json).toJson());
    return path;
}

inline QString readText(const QString& path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? QString::fromUtf8(file.readAll()) : QString();
}

} // namespace studio::test
