package org.tfderain.demo

import android.util.Log
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import org.tfderain.core.Engine
import java.nio.ByteBuffer

/** Where the interpreter runs. */
enum class Accelerator { CPU, GPU }

/**
 * [Engine] backed by the LiteRT interpreter (`com.google.ai.edge.litert`, which keeps the
 * `org.tensorflow.lite` API).
 *
 * With [Accelerator.GPU] the GPU delegate is tried first; when the device does not support it,
 * when creating the interpreter with it fails, or when the first tile fails on it, the engine
 * falls back to the CPU (XNNPACK) and records why in [fallbackReason]. Interpreters and the GPU
 * delegate are not thread-safe and the delegate must be used on the thread that created it:
 * create, run and close an engine on one thread ([DerainViewModel] uses a single-thread
 * dispatcher).
 */
class LiteRtEngine(
    private val model: ByteBuffer,
    requested: Accelerator,
    private val cpuThreads: Int = Runtime.getRuntime().availableProcessors().coerceIn(1, 4),
) : Engine {
    private var interpreter: Interpreter
    private var gpu: GpuDelegate? = null
    private var tilesRun = 0

    /** The accelerator actually in use. */
    var accelerator: Accelerator = Accelerator.CPU
        private set

    /** Why the GPU was not used although requested, or null. */
    var fallbackReason: String? = null
        private set

    init {
        interpreter = if (requested == Accelerator.GPU) {
            createGpu() ?: createCpu()
        } else {
            createCpu()
        }
    }

    private fun createCpu(): Interpreter {
        accelerator = Accelerator.CPU
        val options = Interpreter.Options().setNumThreads(cpuThreads)
        return Interpreter(model, options)
    }

    private fun createGpu(): Interpreter? {
        val compatibility = CompatibilityList()
        try {
            if (!compatibility.isDelegateSupportedOnThisDevice) {
                fallbackReason = "GPU delegate not supported on this device"
                return null
            }
            val delegate = GpuDelegate(compatibility.bestOptionsForThisDevice)
            return try {
                val result = Interpreter(model, Interpreter.Options().addDelegate(delegate))
                gpu = delegate
                accelerator = Accelerator.GPU
                result
            } catch (e: Exception) {
                delegate.close()
                fallbackReason = "GPU delegate failed: ${e.message}"
                Log.w(TAG, "GPU delegate failed, using the CPU", e)
                null
            }
        } catch (e: Throwable) { // e.g. UnsatisfiedLinkError from the delegate's native library
            fallbackReason = "GPU delegate unavailable: ${e.message}"
            Log.w(TAG, "GPU delegate unavailable, using the CPU", e)
            return null
        } finally {
            compatibility.close()
        }
    }

    override fun run(input: ByteBuffer, outputs: Array<ByteBuffer>) {
        val outputMap = HashMap<Int, Any>(outputs.size)
        outputs.forEachIndexed { i, buffer -> outputMap[i] = buffer }
        try {
            interpreter.runForMultipleInputsOutputs(arrayOf<Any>(input), outputMap)
        } catch (e: Exception) {
            if (accelerator != Accelerator.GPU || tilesRun > 0) throw e
            // The first GPU run failed: rebuild on the CPU and run the tile again.
            Log.w(TAG, "GPU inference failed, falling back to the CPU", e)
            fallbackReason = "GPU inference failed: ${e.message}"
            closeInterpreter()
            interpreter = createCpu()
            input.rewind()
            outputs.forEach { it.clear() }
            interpreter.runForMultipleInputsOutputs(arrayOf<Any>(input), outputMap)
        }
        tilesRun++
    }

    private fun closeInterpreter() {
        interpreter.close()
        gpu?.close()
        gpu = null
    }

    override fun close() = closeInterpreter()

    private companion object {
        const val TAG = "LiteRtEngine"
    }
}
