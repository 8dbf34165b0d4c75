// Run files (docs/run-config.md): every field survives JSON -> RunConfig -> JSON, a minimal file
// gets the documented defaults, and every kind of mistake is reported with the file, the dotted
// field and a hint at the fix.

#include "support/TestSupport.h"

#include "core/train/RunConfig.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QObject>
#include <QTemporaryDir>
#include <QTest>

#include <functional>
#include <optional>

using namespace studio;

namespace {

const QString kSource = QStringLiteral("run.json");
const QString kBaseDir = QStringLiteral("/work/runs");

QJsonObject parseObject(const QByteArray& json)
{
    QJsonParseError error;
    const QJsonDocument document = QJsonDocument::fromJson(json, &error);
    if (error.error != QJsonParseError::NoError) {
        qFatal("test JSON does not parse: %s", qPrintable(error.errorString()));
    }
    return document.object();
}

// Only what validation requires; everything else takes its default.
QJsonObject minimalJson()
{
    return parseObject(R"({
        "model": {"checkpoint": "/models/sd15.safetensors"},
        "hypernetwork": {"name": "anime"},
        "dataset": {"folder": "/data/anime"},
        "output": {"folder": "/runs/anime"}
    })");
}

// Every field, none at its default (the round trip then proves each one is read and written).
QJsonObject fullJson()
{
    return parseObject(R"({
        "version": 1,
        "model": {"checkpoint": "/models/sd15.safetensors", "config": "/models/sd15.yaml",
                  "tokenizer": "/models/vocab.json", "clip_skip": 2},
        "hypernetwork": {
            "name": "anime", "file": "", "strength": 0.8,
            "create": {"sizes": [768, 320], "layer_structure": [1, 2, 1],
                       "activation": "relu", "layer_norm": true,
                       "dropout_structure": [0, 0.1, 0], "activate_output": true,
                       "weight_init": "KaimingNormal", "init_std": 0.02, "init_seed": 42}
        },
        "dataset": {"folder": "/data/anime", "template": "/templates/mine.txt",
                    "filename_word_regex": "\\w+", "filename_join_string": "_",
                    "width": 640, "height": 768, "no_crop": true, "flip_probability": 0.5,
                    "shuffle_tags": true, "tag_dropout": 0.1,
                    "latent_sampling": "deterministic"},
        "training": {
            "steps": 3000, "batch_size": 2, "gradient_accumulation": 4, "seed": 1234,
            "optimizer": {"name": "adamw", "weight_decay": 0.02, "beta1": 0.85,
                          "beta2": 0.99, "eps": 1e-7, "momentum": 0.5, "nesterov": true,
                          "alpha": 0.9, "amsgrad": true},
            "learning_rate": {"schedule": "cosine", "rate": 2e-5, "string": "5e-5:100, 5e-6",
                              "cosine": {"cycle_steps": 200, "cycle_mult": 2,
                                         "warmup_steps": 10, "max_lr": 5e-5, "min_lr": 1e-7,
                                         "decay": 0.9}},
            "clip_grad": {"mode": "norm", "value": 1.0},
            "device": "cuda:1", "precision": "bf16", "attention": "sliced",
            "gradient_checkpointing": true, "unload_optimizer": false
        },
        "preview": {"prompt": "a [name] portrait", "negative_prompt": "blurry", "seed": 99,
                    "sampler": "ddim", "steps": 30, "cfg_scale": 6.5, "width": 512,
                    "height": 576},
        "output": {"folder": "/runs/anime", "save_every": 250, "preview_every": 100,
                   "save_at_cycle_end": true, "preview_at_cycle_end": true,
                   "save_optimizer": false}
    })");
}

// A second complete file whose every value differs from fullJson() and is valid on its own in
// fullJson()'s context, so that each field can be swapped in alone.
QJsonObject otherJson()
{
    return parseObject(R"({
        "version": 1,
        "model": {"checkpoint": "/models/other.ckpt", "config": "", "tokenizer": "",
                  "clip_skip": 1},
        "hypernetwork": {
            "name": "other", "file": "/hypernetworks/other.pt", "strength": 1.0,
            "create": {"sizes": [1024], "layer_structure": [1, 1.5, 1], "activation": null,
                       "layer_norm": false, "dropout_structure": [0, 0, 0],
                       "activate_output": false, "weight_init": "XavierUniform",
                       "init_std": 0.01, "init_seed": -1}
        },
        "dataset": {"folder": "/data/other", "template": "style", "filename_word_regex": "",
                    "filename_join_string": " ", "width": 512, "height": 512,
                    "no_crop": false, "flip_probability": 0, "shuffle_tags": false,
                    "tag_dropout": 0, "latent_sampling": "random"},
        "training": {
            "steps": 500, "batch_size": 1, "gradient_accumulation": 1, "seed": 0,
            "optimizer": {"name": "adam", "weight_decay": 0, "beta1": 0.9, "beta2": 0.999,
                          "eps": 1e-8, "momentum": 0, "nesterov": false, "alpha": 0.99,
                          "amsgrad": false},
            "learning_rate": {"schedule": "step_string", "rate": 1e-5, "string": "1e-5",
                              "cosine": {"cycle_steps": 64, "cycle_mult": 1, "warmup_steps": 5,
                                         "max_lr": 4e-5, "min_lr": 6e-7, "decay": 1}},
            "clip_grad": {"mode": "value", "value": 0.5},
            "device": "cpu", "precision": "fp32", "attention": "plain",
            "gradient_checkpointing": false, "unload_optimizer": true
        },
        "preview": {"prompt": "", "negative_prompt": "", "seed": -1, "sampler": "euler_a",
                    "steps": 20, "cfg_scale": 7, "width": 0, "height": 0},
        "output": {"folder": "/runs/other", "save_every": 0, "preview_every": 0,
                   "save_at_cycle_end": false, "preview_at_cycle_end": false,
                   "save_optimizer": true}
    })");
}

// json with the value at a dotted path replaced, or removed when `value` is empty.
QJsonObject withValue(QJsonObject json, QStringList path, const std::optional<QJsonValue>& value)
{
    const QString key = path.takeFirst();
    if (path.isEmpty()) {
        if (value) {
            json.insert(key, *value);
        } else {
            json.remove(key);
        }
        return json;
    }
    json.insert(key, withValue(json.value(key).toObject(), path, value));
    return json;
}

QJsonValue valueAt(const QJsonObject& json, const QString& dottedPath)
{
    QJsonValue value = json;
    for (const QString& key : dottedPath.split(QLatin1Char('.'))) {
        value = value.toObject().value(key);
    }
    return value;
}

// "a.b=JSON; -c.d" sets a.b to the JSON value and removes c.d.
QJsonObject edited(QJsonObject json, const QString& edits)
{
    for (const QString& edit : edits.split(QLatin1Char(';'), Qt::SkipEmptyParts)) {
        const QString trimmed = edit.trimmed();
        if (trimmed.startsWith(QLatin1Char('-'))) {
            json = withValue(json, trimmed.mid(1).split(QLatin1Char('.')), std::nullopt);
            continue;
        }
        const qsizetype equals = trimmed.indexOf(QLatin1Char('='));
        const QByteArray valueText = trimmed.mid(equals + 1).toUtf8();
        const QJsonValue value = parseObject("{\"v\": " + valueText + "}").value("v");
        json = withValue(json, trimmed.left(equals).split(QLatin1Char('.')), value);
    }
    return json;
}

// Dotted paths of every value that is not an object.
QStringList leafPaths(const QJsonObject& json, const QString& prefix = {})
{
    QStringList paths;
    for (auto it = json.begin(); it != json.end(); ++it) {
        const QString path = prefix.isEmpty() ? it.key() : prefix + QLatin1Char('.') + it.key();
        if (it.value().isObject()) {
            paths += leafPaths(it.value().toObject(), path);
        } else {
            paths << path;
        }
    }
    return paths;
}

// Through text and back, so that 2 and 2.0 (an integer and a double inside QJsonValue) and
// arrays holding them compare equal.
QJsonValue normalized(const QJsonValue& value)
{
    const QByteArray text = QJsonDocument(QJsonArray{value}).toJson(QJsonDocument::Compact);
    return QJsonDocument::fromJson(text).array().at(0);
}

bool sameJson(const QJsonValue& a, const QJsonValue& b)
{
    return normalized(a) == normalized(b);
}

QString shown(const QJsonObject& json)
{
    return QString::fromUtf8(QJsonDocument(json).toJson(QJsonDocument::Indented));
}

RunConfig parse(const QJsonObject& json)
{
    return runConfigFromJson(json, kSource, kBaseDir);
}

} // namespace

class TestRunConfig : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void testMistakesNameTheFieldAndTheFix_data();
    void testMistakesNameTheFieldAndTheFix();
    void testMessageFormat();
    void testEveryFieldRoundTrips();
    void testEveryFieldIsReadAndCompared();
    void testMinimalFileGetsTheDefaults();
    void testOptimizerDefaultWeightDecayFollowsTheName();
    void testDropoutStructureDefaultsToZeros();
    void testRelativePathsResolveAgainstTheRunFolder();
    void testValidationDoesNotTouchTheFileSystem();
    void testFileAndCreateTogether();
    void testClipValueIgnoredWithoutClipping();
    void testTextFormsOfLists();
    void testReadAndWriteFiles();
    void testFileErrorsNameTheFile();
    void testNames();
    void testDocumentedExamplesAreValid();
};

void TestRunConfig::testMistakesNameTheFieldAndTheFix_data()
{
    QTest::addColumn<QString>("edits");
    QTest::addColumn<QString>("field");
    QTest::addColumn<QString>("hint");

    const QString cosine = QStringLiteral("training.learning_rate.schedule=\"cosine\"; ");

    // Keys and types.
    QTest::addRow("unknown top-level key") << "trainig={}"
                                           << "trainig"
                                           << "did you mean 'training'?";
    QTest::addRow("unknown nested key") << "training.stpes=10"
                                        << "training.stpes"
                                        << "did you mean 'steps'?";
    QTest::addRow("unknown key, other case") << "training.Steps=10"
                                             << "training.Steps"
                                             << "did you mean 'steps'?";
    QTest::addRow("unknown key three deep") << "training.learning_rate.cosine.warmup_step=5"
                                            << "training.learning_rate.cosine.warmup_step"
                                            << "did you mean 'warmup_steps'?";
    QTest::addRow("unknown key far from any") << "dataset.colour=1"
                                              << "dataset.colour"
                                              << "the keys here are: folder, template";
    QTest::addRow("string for steps") << "training.steps=\"1000\""
                                      << "training.steps"
                                      << "(write it without quotes)";
    QTest::addRow("fraction for steps") << "training.steps=10.5"
                                        << "training.steps"
                                        << "a whole number";
    QTest::addRow("number for name") << "hypernetwork.name=5"
                                     << "hypernetwork.name"
                                     << "text in double quotes, got the number 5";
    QTest::addRow("string for a flag") << "dataset.no_crop=\"true\""
                                       << "dataset.no_crop"
                                       << "true or false";
    QTest::addRow("number for a section") << "training=5"
                                          << "training"
                                          << "an object";
    QTest::addRow("text in a list") << "hypernetwork.create.sizes=[768, \"x\"]"
                                    << "hypernetwork.create.sizes[1]"
                                    << "whole number";
    QTest::addRow("huge count") << "training.batch_size=1e12"
                                << "training.batch_size"
                                << "out of range";

    // Required fields.
    QTest::addRow("no dataset section") << "-dataset"
                                        << "dataset.folder"
                                        << "missing or empty";
    QTest::addRow("empty dataset folder") << "dataset.folder=\"  \""
                                          << "dataset.folder"
                                          << "the folder of training images";
    QTest::addRow("no checkpoint") << "-model.checkpoint"
                                   << "model.checkpoint"
                                   << ".safetensors";
    QTest::addRow("no name") << "-hypernetwork.name"
                             << "hypernetwork.name"
                             << "NAME-STEP.pt";
    QTest::addRow("name with a slash") << "hypernetwork.name=\"a/b\""
                                       << "hypernetwork.name"
                                       << "which a file name cannot hold";
    QTest::addRow("no output folder") << "-output"
                                      << "output.folder"
                                      << "run folder";

    // The hypernetwork to create.
    QTest::addRow("layers not starting with 1") << "hypernetwork.create.layer_structure=\"2, 2, 1\""
                                                << "hypernetwork.create.layer_structure"
                                                << "must start and end with 1";
    QTest::addRow("layers not ending with 1") << "hypernetwork.create.layer_structure=[1, 2, 2]"
                                              << "hypernetwork.create.layer_structure"
                                              << "must start and end with 1";
    QTest::addRow("empty layer string") << "hypernetwork.create.layer_structure=\"\""
                                        << "hypernetwork.create.layer_structure"
                                        << "at least two entries";
    QTest::addRow("empty layer list") << "hypernetwork.create.layer_structure=[]"
                                      << "hypernetwork.create.layer_structure"
                                      << "at least two entries";
    QTest::addRow("dropout longer than layers")
        << "hypernetwork.create.dropout_structure=\"0, 0.1, 0.1, 0\""
        << "hypernetwork.create.dropout_structure"
        << "has 4 entries but layer structure";
    QTest::addRow("dropout shorter than layers")
        << "hypernetwork.create.layer_structure=[1, 2, 2, 1]; "
           "hypernetwork.create.dropout_structure=[0, 0.1, 0]"
        << "hypernetwork.create.dropout_structure"
        << "has 3 entries";
    QTest::addRow("dropout not starting with 0")
        << "hypernetwork.create.dropout_structure=[0.1, 0.1, 0]"
        << "hypernetwork.create.dropout_structure"
        << "must start and end with 0";
    QTest::addRow("dropout not ending with 0")
        << "hypernetwork.create.dropout_structure=[0, 0.1, 0.1]"
        << "hypernetwork.create.dropout_structure"
        << "must start and end with 0";
    QTest::addRow("dropout of one") << "hypernetwork.create.dropout_structure=[0, 1, 0]"
                                    << "hypernetwork.create.dropout_structure"
                                    << "a number in (0, 1)";
    QTest::addRow("no sizes") << "hypernetwork.create.sizes=[]"
                              << "hypernetwork.create.sizes"
                              << "at least one of 768";
    QTest::addRow("bad activation") << "hypernetwork.create.activation=\"sigmoidish\""
                                    << "hypernetwork.create.activation"
                                    << "sigmoidish";
    QTest::addRow("bad weight init") << "hypernetwork.create.weight_init=\"Uniform\""
                                     << "hypernetwork.create.weight_init"
                                     << "KaimingNormal";
    QTest::addRow("zero init std") << "hypernetwork.create.init_std=0"
                                   << "hypernetwork.create.init_std"
                                   << "must be a number > 0";
    QTest::addRow("init seed below -1") << "hypernetwork.create.init_seed=-2"
                                        << "hypernetwork.create.init_seed"
                                        << "must be -1";

    // Training.
    QTest::addRow("zero steps") << "training.steps=0"
                                << "training.steps"
                                << "must be 1 or more, got 0";
    QTest::addRow("zero batch size") << "training.batch_size=0"
                                     << "training.batch_size"
                                     << "must be 1 or more, got 0";
    QTest::addRow("zero accumulation") << "training.gradient_accumulation=0"
                                       << "training.gradient_accumulation"
                                       << "must be 1 or more, got 0";
    QTest::addRow("negative seed") << "training.seed=-1"
                                   << "training.seed"
                                   << "seed >= 0";
    QTest::addRow("bad optimizer name") << "training.optimizer.name=\"adamx\""
                                        << "training.optimizer.name"
                                        << "adamw, adam, sgd, rmsprop, adagrad";
    QTest::addRow("number for optimizer name") << "training.optimizer.name=1"
                                               << "training.optimizer.name"
                                               << "text in double quotes";
    QTest::addRow("negative weight decay") << "training.optimizer.weight_decay=-0.01"
                                           << "training.optimizer.weight_decay"
                                           << "must be 0 or more, got -0.01";
    QTest::addRow("beta1 of one") << "training.optimizer.beta1=1"
                                  << "training.optimizer.beta1"
                                  << "< 1";
    QTest::addRow("nesterov without momentum")
        << "training.optimizer.name=\"sgd\"; training.optimizer.nesterov=true"
        << "training.optimizer.nesterov"
        << "momentum";
    QTest::addRow("bad schedule name") << "training.learning_rate.schedule=\"linear\""
                                       << "training.learning_rate.schedule"
                                       << "constant, step_string, cosine";
    QTest::addRow("bad rate string") << "training.learning_rate.string=\"1e-5:abc\""
                                     << "training.learning_rate.string"
                                     << "rate:step";
    QTest::addRow("zero constant rate")
        << "training.learning_rate.schedule=\"constant\"; training.learning_rate.rate=0"
        << "training.learning_rate.rate"
        << "must be > 0";
    QTest::addRow("warmup as long as the cycle")
        << cosine + "training.learning_rate.cosine={\"cycle_steps\": 10, \"warmup_steps\": 10}"
        << "training.learning_rate.cosine.warmup_steps"
        << "smaller than cosine.cycle_steps (10), got 10";
    QTest::addRow("warmup longer than the cycle")
        << cosine + "training.learning_rate.cosine={\"cycle_steps\": 10, \"warmup_steps\": 50}"
        << "training.learning_rate.cosine.warmup_steps"
        << "shorten the warm-up";
    QTest::addRow("zero cycle") << cosine + "training.learning_rate.cosine.cycle_steps=0"
                                << "training.learning_rate.cosine.cycle_steps"
                                << "must be 1 or more";
    QTest::addRow("cycle multiplier below 1")
        << cosine + "training.learning_rate.cosine.cycle_mult=0.5"
        << "training.learning_rate.cosine.cycle_mult"
        << "must be 1 or more";
    QTest::addRow("min above max")
        << cosine + "training.learning_rate.cosine={\"max_lr\": 1e-6, \"min_lr\": 1e-5}"
        << "training.learning_rate.cosine.min_lr"
        << "above cosine.max_lr";
    QTest::addRow("min of one") << cosine + "training.learning_rate.cosine.min_lr=1"
                                << "training.learning_rate.cosine.min_lr"
                                << "< 1";
    QTest::addRow("zero max") << cosine + "training.learning_rate.cosine.max_lr=0"
                              << "training.learning_rate.cosine.max_lr"
                              << "must be > 0";
    QTest::addRow("decay above one") << cosine + "training.learning_rate.cosine.decay=1.5"
                                     << "training.learning_rate.cosine.decay"
                                     << "between 0 and 1";
    QTest::addRow("bad clip mode") << "training.clip_grad.mode=\"limit\""
                                   << "training.clip_grad.mode"
                                   << "none, norm, value";
    QTest::addRow("zero clip norm") << "training.clip_grad={\"mode\": \"norm\", \"value\": 0}"
                                    << "training.clip_grad.value"
                                    << "must be > 0 when clipping is on";
    QTest::addRow("negative clip value")
        << "training.clip_grad={\"mode\": \"value\", \"value\": -1}"
        << "training.clip_grad.value"
        << "must be > 0";
    QTest::addRow("bad device") << "training.device=\"gpu\""
                                << "training.device"
                                << "cpu, cuda or cuda:N";
    QTest::addRow("bad precision") << "training.precision=\"fp8\""
                                   << "training.precision"
                                   << "fp32, fp16, bf16";
    QTest::addRow("fp16 on the cpu") << "training.precision=\"fp16\""
                                     << "training.precision"
                                     << "needs a CUDA device";
    QTest::addRow("bad attention") << "training.attention=\"flash\""
                                   << "training.attention"
                                   << "plain, sliced, sdpa";

    // Dataset.
    QTest::addRow("width not a multiple of 8") << "dataset.width=500"
                                               << "dataset.width"
                                               << "multiple of 8 from 64 to 4096, got 500; try 496";
    QTest::addRow("zero height") << "dataset.height=0"
                                 << "dataset.height"
                                 << "multiple of 8";
    QTest::addRow("flip probability above 1") << "dataset.flip_probability=1.5"
                                              << "dataset.flip_probability"
                                              << "between 0 and 1, got 1.5";
    QTest::addRow("negative flip probability") << "dataset.flip_probability=-0.1"
                                               << "dataset.flip_probability"
                                               << "between 0 and 1";
    QTest::addRow("tag dropout above 1") << "dataset.tag_dropout=2"
                                         << "dataset.tag_dropout"
                                         << "between 0 and 1, got 2";
    QTest::addRow("negative tag dropout") << "dataset.tag_dropout=-0.5"
                                          << "dataset.tag_dropout"
                                          << "between 0 and 1";
    QTest::addRow("bad latent sampling") << "dataset.latent_sampling=\"mean\""
                                         << "dataset.latent_sampling"
                                         << "once, deterministic, random";
    QTest::addRow("unknown built-in template") << "dataset.template=\"stlye\""
                                               << "dataset.template"
                                               << "not a built-in template";
    QTest::addRow("empty template") << "dataset.template=\"\""
                                    << "dataset.template"
                                    << "is empty";
    QTest::addRow("bad file-name regex") << "dataset.filename_word_regex=\"([a-z\""
                                         << "dataset.filename_word_regex"
                                         << "not a valid regular expression";

    // Model, preview, output, version.
    QTest::addRow("negative clip skip") << "model.clip_skip=-1"
                                        << "model.clip_skip"
                                        << "must be 0";
    QTest::addRow("bad sampler") << "preview.sampler=\"dpm++\""
                                 << "preview.sampler"
                                 << "euler_a";
    QTest::addRow("preview width not a multiple of 8") << "preview.width=100"
                                                       << "preview.width"
                                                       << "0 (the training size) or";
    QTest::addRow("zero preview steps") << "preview.steps=0"
                                        << "preview.steps"
                                        << "must be 1 or more";
    QTest::addRow("preview seed below -1") << "preview.seed=-2"
                                           << "preview.seed"
                                           << "must be -1 or more";
    QTest::addRow("negative cfg scale") << "preview.cfg_scale=-1"
                                        << "preview.cfg_scale"
                                        << "must be 0 or more";
    QTest::addRow("negative save interval") << "output.save_every=-1"
                                            << "output.save_every"
                                            << "must be 0 or more, got -1";
    QTest::addRow("negative preview interval") << "output.preview_every=-5"
                                               << "output.preview_every"
                                               << "must be 0 or more";
    QTest::addRow("version too new") << "version=2"
                                     << "version"
                                     << "update Hypernet Studio";
    QTest::addRow("version zero") << "version=0"
                                  << "version"
                                  << "must be 1";
}

void TestRunConfig::testMistakesNameTheFieldAndTheFix()
{
    QFETCH(QString, edits);
    QFETCH(QString, field);
    QFETCH(QString, hint);

    const QJsonObject json = edited(minimalJson(), edits);
    const QString message = test::errorMessageOf([&] { parse(json); });

    QVERIFY2(!message.isNull(), qPrintable(QStringLiteral("accepted:\n") + shown(json)));
    const QString prefix = QStringLiteral("'%1': %2: ").arg(kSource, field);
    QVERIFY2(message.startsWith(prefix), qPrintable(message));
    QVERIFY2(message.contains(hint, Qt::CaseInsensitive), qPrintable(message));
}

void TestRunConfig::testMessageFormat()
{
    const QJsonObject json = edited(minimalJson(), QStringLiteral("training.steps=0"));
    const QString message = test::errorMessageOf([&] { parse(json); });
    QCOMPARE(message, QStringLiteral("'run.json': training.steps: must be 1 or more, got 0 (the "
                                     "number of optimizer steps to train)"));
}

void TestRunConfig::testEveryFieldRoundTrips()
{
    for (const QJsonObject& json : {fullJson(), otherJson()}) {
        const RunConfig config = parse(json);
        const QJsonObject written = runConfigToJson(config);
        QVERIFY2(sameJson(written, json), qPrintable(shown(written)));
        QVERIFY(parse(written) == config);
    }

    // The full file really lists every field that is written.
    QCOMPARE(leafPaths(fullJson()), leafPaths(runConfigToJson(parse(minimalJson()))));
    QCOMPARE(leafPaths(otherJson()), leafPaths(fullJson()));
}

void TestRunConfig::testEveryFieldIsReadAndCompared()
{
    const QJsonObject full = fullJson();
    const QJsonObject other = otherJson();
    const RunConfig fullConfig = parse(full);

    for (const QString& path : leafPaths(full)) {
        if (sameJson(valueAt(full, path), valueAt(other, path))) {
            QCOMPARE(path, QStringLiteral("version")); // the only field with one valid value
            continue;
        }
        const QJsonObject json =
            withValue(full, path.split(QLatin1Char('.')), valueAt(other, path));
        const QString message = test::errorMessageOf([&] { parse(json); });
        QVERIFY2(message.isNull(), qPrintable(path + QStringLiteral(": ") + message));

        const RunConfig config = parse(json);
        QVERIFY2(config != fullConfig, qPrintable(path + QStringLiteral(" is not compared")));
        QVERIFY2(sameJson(valueAt(runConfigToJson(config), path), valueAt(other, path)),
                 qPrintable(path + QStringLiteral(" is not read or written back")));
    }
}

void TestRunConfig::testMinimalFileGetsTheDefaults()
{
    const RunConfig config = parse(minimalJson());

    RunConfig expected;
    expected.model.checkpoint = QStringLiteral("/models/sd15.safetensors");
    expected.hypernetwork.name = QStringLiteral("anime");
    expected.dataset.folder = QStringLiteral("/data/anime");
    expected.output.folder = QStringLiteral("/runs/anime");
    QVERIFY(config == expected);

    // The documented defaults (docs/run-config.md), spelled out.
    QCOMPARE(config.model.clipSkip, 0);
    QCOMPARE(config.hypernetwork.strength, 1.0);
    QVERIFY(config.hypernetwork.create.sizes == (std::vector<int>{768, 320, 640, 1280}));
    QVERIFY(config.hypernetwork.create.layerStructure == (std::vector<double>{1, 2, 1}));
    QCOMPARE(config.hypernetwork.create.activation.value_or(QString()), QStringLiteral("linear"));
    QVERIFY(!config.hypernetwork.create.initSeed);
    QCOMPARE(config.dataset.templateFile, QStringLiteral("style_filewords"));
    QCOMPARE(config.dataset.width, 512);
    QCOMPARE(config.dataset.latentSampling, LatentSampling::Once);
    QCOMPARE(config.training.steps, int64_t(1000));
    QCOMPARE(config.training.batchSize, 1);
    QCOMPARE(config.training.optimizer.kind, OptimizerKind::AdamW);
    QCOMPARE(config.training.optimizer.weightDecay, 0.01);
    QCOMPARE(config.training.learningRate.kind, LrScheduleKind::StepString);
    QCOMPARE(config.training.learningRate.learnRateString, QStringLiteral("0.00001"));
    QCOMPARE(config.training.clipGradMode, ClipGradMode::None);
    QCOMPARE(config.training.device, QStringLiteral("cpu"));
    QCOMPARE(config.training.precision, QStringLiteral("fp32"));
    QCOMPARE(config.preview.sampler, SamplerKind::EulerAncestral);
    QCOMPARE(config.preview.seed, int64_t(-1));
    QCOMPARE(config.output.saveEvery, int64_t(500));
    QCOMPARE(config.output.previewEvery, int64_t(500));
    QVERIFY(config.output.saveOptimizer);

    // The schedule takes its length from training.steps.
    QCOMPARE(config.scheduleSpec().maxSteps, int64_t(1000));
    QCOMPARE(config.scheduleSpec(250).initialStep, int64_t(250));
}

void TestRunConfig::testOptimizerDefaultWeightDecayFollowsTheName()
{
    for (const char* name : {"adam", "sgd", "rmsprop", "adagrad"}) {
        const QJsonObject json =
            edited(minimalJson(), QStringLiteral("training.optimizer.name=\"%1\"").arg(name));
        QCOMPARE(parse(json).training.optimizer.weightDecay, 0.0);
    }
    const QJsonObject adamw = edited(minimalJson(), QStringLiteral("training.optimizer.name="
                                                                   "\"AdamW\""));
    QCOMPARE(parse(adamw).training.optimizer.kind, OptimizerKind::AdamW);
    QCOMPARE(parse(adamw).training.optimizer.weightDecay, 0.01);
}

void TestRunConfig::testDropoutStructureDefaultsToZeros()
{
    const QJsonObject json =
        edited(minimalJson(), QStringLiteral("hypernetwork.create.layer_structure=[1, 2, 2, 1]"));
    const HypernetworkConfig create = parse(json).hypernetwork.create;
    QVERIFY(create.dropoutStructure == (std::vector<double>{0, 0, 0, 0}));
    QVERIFY(!create.useDropout);

    const QJsonObject withDropout = edited(
        minimalJson(), QStringLiteral("hypernetwork.create.dropout_structure=\"0, 0.2, 0\""));
    QVERIFY(parse(withDropout).hypernetwork.create.useDropout);
}

void TestRunConfig::testRelativePathsResolveAgainstTheRunFolder()
{
    const QJsonObject json = edited(minimalJson(), QStringLiteral(R"(
        model.checkpoint="../models/sd15.safetensors";
        model.config="sd15.yaml";
        hypernetwork.file="hypernetworks/anime-500.pt";
        dataset.folder="images";
        dataset.template="my_template.txt";
        output.folder=".")"));
    const RunConfig config = parse(json);

    QCOMPARE(config.model.checkpoint, QStringLiteral("/work/models/sd15.safetensors"));
    QCOMPARE(config.model.config, QStringLiteral("/work/runs/sd15.yaml"));
    QCOMPARE(config.model.tokenizer, QString()); // empty stays empty: searched
    QCOMPARE(config.hypernetwork.file, QStringLiteral("/work/runs/hypernetworks/anime-500.pt"));
    QCOMPARE(config.dataset.folder, QStringLiteral("/work/runs/images"));
    QCOMPARE(config.dataset.templateFile, QStringLiteral("/work/runs/my_template.txt"));
    QCOMPARE(config.output.folder, QStringLiteral("/work/runs"));

    // A built-in template is a name, not a path.
    const QJsonObject builtIn = edited(minimalJson(), QStringLiteral("dataset.template=\"style\""));
    QCOMPARE(parse(builtIn).dataset.templateFile, QStringLiteral("style"));
}

void TestRunConfig::testValidationDoesNotTouchTheFileSystem()
{
    // Folders and files are checked when training starts (the dataset, the model loader), so a
    // run file can be written and checked before its folders exist.
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString missing = dir.filePath(QStringLiteral("not/there"));
    const QJsonObject json = edited(minimalJson(), QStringLiteral("dataset.folder=\"%1\"; "
                                                                  "model.checkpoint=\"%1/a.ckpt\"; "
                                                                  "output.folder=\"%1/run\"")
                                                       .arg(missing));
    QCOMPARE(parse(json).dataset.folder, missing);
    QVERIFY(!QFile::exists(missing));
}

void TestRunConfig::testFileAndCreateTogether()
{
    // `create` only describes a new hypernetwork; with `file` it is ignored, which is what lets
    // a run file written by runConfigToJson (every field, create included) continue a file.
    const QJsonObject json = edited(minimalJson(), QStringLiteral(R"(
        hypernetwork.file="/hypernetworks/anime-500.pt";
        hypernetwork.create.layer_structure=[1, 4, 1])"));
    const RunConfig config = parse(json);
    QCOMPARE(config.hypernetwork.file, QStringLiteral("/hypernetworks/anime-500.pt"));
    QVERIFY(parse(runConfigToJson(config)) == config);

    // Type errors in it are still errors: the file is parsed strictly throughout.
    const QJsonObject wrongType =
        edited(json, QStringLiteral("hypernetwork.create.layer_norm=\"yes\""));
    STUDIO_VERIFY_ERROR(parse(wrongType), "hypernetwork.create.layer_norm: expected true or false");
}

void TestRunConfig::testClipValueIgnoredWithoutClipping()
{
    const QJsonObject json =
        edited(minimalJson(), QStringLiteral("training.clip_grad={\"mode\": \"none\", "
                                             "\"value\": 0}"));
    QCOMPARE(parse(json).training.clipGradMode, ClipGradMode::None);
}

void TestRunConfig::testTextFormsOfLists()
{
    // The webui's text boxes ("1, 2, 1") are accepted beside JSON arrays.
    const QJsonObject json = edited(minimalJson(), QStringLiteral(R"(
        hypernetwork.create.sizes="768, 1024";
        hypernetwork.create.layer_structure="1, 1.5, 1";
        hypernetwork.create.dropout_structure="0, 0.05, 0")"));
    const HypernetworkConfig create = parse(json).hypernetwork.create;
    QVERIFY(create.sizes == (std::vector<int>{768, 1024}));
    QVERIFY(create.layerStructure == (std::vector<double>{1, 1.5, 1}));
    QVERIFY(create.dropoutStructure == (std::vector<double>{0, 0.05, 0}));

    const QJsonObject null = edited(minimalJson(), QStringLiteral("hypernetwork.create."
                                                                  "activation=null"));
    QVERIFY(!parse(null).hypernetwork.create.activation);
}

void TestRunConfig::testReadAndWriteFiles()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath(QStringLiteral("run.json"));
    const RunConfig config = parse(fullJson());

    writeRunConfig(config, path);
    QVERIFY(readRunConfig(path) == config);

    // Relative paths in a file resolve against the file's folder.
    QJsonObject relative = edited(minimalJson(), QStringLiteral("dataset.folder=\"images\""));
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::Truncate));
    file.write(QJsonDocument(relative).toJson());
    file.close();
    QCOMPARE(readRunConfig(path).dataset.folder, QDir(dir.path()).filePath("images"));
}

void TestRunConfig::testFileErrorsNameTheFile()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath(QStringLiteral("run.json"));
    const QString named = QStringLiteral("'%1': ").arg(QDir::toNativeSeparators(path));

    STUDIO_VERIFY_ERROR(readRunConfig(path), named + "no such run file");

    const auto writeText = [&](const QByteArray& text) {
        QFile file(path);
        QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::Truncate));
        file.write(text);
    };
    writeText("{\n  \"training\": {\n    \"steps\": 10,\n  }\n}\n");
    STUDIO_VERIFY_ERROR(readRunConfig(path), named + "not valid JSON at line:column 4:");

    writeText("[1, 2]");
    STUDIO_VERIFY_ERROR(readRunConfig(path), named + "a run file holds one JSON object");

    writeText(QJsonDocument(edited(minimalJson(), QStringLiteral("training.steps=0"))).toJson());
    STUDIO_VERIFY_ERROR(readRunConfig(path), named + "training.steps: must be 1 or more");
}

void TestRunConfig::testNames()
{
    QCOMPARE(optimizerName(OptimizerKind::AdamW), QStringLiteral("AdamW"));
    QCOMPARE(optimizerName(OptimizerKind::RMSprop), QStringLiteral("RMSprop"));
    QCOMPARE(parseOptimizerKind(QStringLiteral("rmsprop")), OptimizerKind::RMSprop);
    QCOMPARE(parseOptimizerKind(QStringLiteral("SGD")), OptimizerKind::SGD);
    STUDIO_VERIFY_ERROR(parseOptimizerKind(QStringLiteral("lion")), "choose one of: adamw");
    QCOMPARE(latentSamplingName(LatentSampling::Deterministic), QStringLiteral("deterministic"));
    QCOMPARE(parseLatentSampling(QStringLiteral("Random")), LatentSampling::Random);
    STUDIO_VERIFY_ERROR(parseLatentSampling(QStringLiteral("mean")), "once, deterministic");
    QCOMPARE(defaultWeightDecay(OptimizerKind::AdamW), 0.01);
    QCOMPARE(defaultWeightDecay(OptimizerKind::SGD), 0.0);
}

void TestRunConfig::testDocumentedExamplesAreValid()
{
    // docs/run-config.md shows a complete and a minimal file; both must read as documented.
    QFile doc(QFINDTESTDATA("../../docs/run-config.md"));
    QVERIFY(doc.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(doc.readAll());
    const QString fence = QStringLiteral("```json\n");

    QList<QJsonObject> examples;
    for (qsizetype at = text.indexOf(fence); at >= 0; at = text.indexOf(fence, at + 1)) {
        const qsizetype begin = at + fence.size();
        const qsizetype end = text.indexOf(QStringLiteral("```"), begin);
        examples << parseObject(text.mid(begin, end - begin).toUtf8());
    }
    QCOMPARE(examples.size(), 2);

    const RunConfig complete = parse(examples[0]);
    QCOMPARE(complete.training.learningRate.kind, LrScheduleKind::Cosine);
    QCOMPARE(complete.model.checkpoint,
             QStringLiteral("/work/models/v1-5-pruned-emaonly.safetensors"));
    const RunConfig minimal = parse(examples[1]);
    QCOMPARE(minimal.dataset.folder, QStringLiteral("/work/runs/images"));

    // The complete example really lists every field.
    QCOMPARE(leafPaths(examples[0]), leafPaths(runConfigToJson(complete)));
}

QTEST_GUILESS_MAIN(TestRunConfig)
#include "TestRunConfig.moc"
