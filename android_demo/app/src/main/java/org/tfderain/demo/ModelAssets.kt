package org.tfderain.demo

import android.content.Context
import android.content.res.AssetFileDescriptor
import org.tfderain.core.ModelSpec
import java.io.FileInputStream
import java.io.IOException
import java.nio.ByteBuffer
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import java.security.MessageDigest

/**
 * The bundled models: where `export/android_assets.py` puts them and how the app loads them.
 *
 * Each variant is a folder `assets/models/<variant>/` with the `.tflite` file and its
 * `model_spec.json` (parsed by [ModelSpec]). The names here are checked against the exporter by
 * `tests/test_android_assets.py`: change both together.
 */
object ModelAssets {
    const val MODELS_DIR = "models"
    const val SPEC_FILE = "model_spec.json"

    /**
     * tfderain's bundled default model (RainUNet), quantization-aware trained, full integer with
     * uint8 input/output (the default).
     */
    const val INT8_VARIANT = "rainunet_int8"
    const val INT8_FILE = "rainunet_qat_int8.tflite"

    /** The same network with float16 weights and float32 input/output. */
    const val FP16_VARIANT = "rainunet_fp16"
    const val FP16_FILE = "rainunet_fp16.tflite"

    /** Optional PReNet (QAT, full integer, uint8 input/output), exported with `--with-prenet`. */
    const val PRENET_VARIANT = "prenet_int8"
    const val PRENET_FILE = "prenet_qat_int8.tflite"

    /** Optional density-aware model (mCODE-Net), exported with `--with-density`. */
    const val DENSITY_VARIANT = "mcodenet_fp16"
    const val DENSITY_FILE = "mcodenet_fp16.tflite"

    /** Spec files the build requires (app/build.gradle.kts `requiredModelSpecs`). */
    val REQUIRED_SPECS = listOf(
        "$MODELS_DIR/$INT8_VARIANT/$SPEC_FILE",
        "$MODELS_DIR/$FP16_VARIANT/$SPEC_FILE",
    )

    /**
     * Rain density levels of CODE-Net's continuous estimate (`tfderain.models.codenet`
     * `RDE_LEVEL_THRESHOLDS`): light below 0.6, medium below 0.78, heavy above.
     */
    val DENSITY_THRESHOLDS = floatArrayOf(0.6f, 0.78f)

    /** A model ready for the interpreter: its spec and its memory-mapped `.tflite` bytes. */
    class Loaded(val variant: String, val spec: ModelSpec, val model: ByteBuffer)

    fun specPath(variant: String) = "$MODELS_DIR/$variant/$SPEC_FILE"

    /** Whether a variant is bundled (the PReNet and density models are optional). */
    fun isAvailable(context: Context, variant: String): Boolean =
        context.assets.list("$MODELS_DIR/$variant")?.contains(SPEC_FILE) == true

    /**
     * Loads a variant: parses its spec, maps its `.tflite` file and checks the file's SHA-256
     * against the spec.
     *
     * @throws IOException when a file is missing, with the asset path
     * @throws IllegalArgumentException when the spec is invalid or does not match the model
     */
    fun load(context: Context, variant: String): Loaded {
        val specPath = specPath(variant)
        val json = try {
            context.assets.open(specPath).use { it.readBytes().toString(Charsets.UTF_8) }
        } catch (e: IOException) {
            throw IOException("$specPath: missing (run export/android_assets.py)", e)
        }
        val spec = ModelSpec.parse(json, specPath)
        val modelPath = "$MODELS_DIR/$variant/${spec.file}"
        val model = try {
            context.assets.openFd(modelPath).use { map(it) }
        } catch (e: IOException) {
            throw IOException("$modelPath: missing or compressed in the APK", e)
        }
        val digest = sha256(model)
        require(digest.equals(spec.sha256, ignoreCase = true)) {
            "$modelPath: SHA-256 $digest does not match $specPath (${spec.sha256})"
        }
        return Loaded(variant, spec, model)
    }

    private fun map(fd: AssetFileDescriptor): MappedByteBuffer =
        FileInputStream(fd.fileDescriptor).use { stream ->
            stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
        }

    private fun sha256(buffer: ByteBuffer): String {
        val md = MessageDigest.getInstance("SHA-256")
        md.update(buffer.duplicate())
        return md.digest().joinToString("") { "%02x".format(it) }
    }

    /** Level index (0 light, 1 medium, 2 heavy) of a density value. */
    fun densityLevel(value: Float): Int = DENSITY_THRESHOLDS.count { value >= it }
}
