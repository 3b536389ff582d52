package org.tfderain.demo

import android.app.Application
import android.graphics.Bitmap
import android.net.Uri
import android.os.SystemClock
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.ExecutorCoroutineDispatcher
import kotlinx.coroutines.Job
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.tfderain.core.TiledDerainer
import java.text.SimpleDateFormat
import java.util.Date
import java.util.Locale
import java.util.concurrent.Executors
import kotlin.coroutines.coroutineContext

/** What the screen shows. */
sealed interface UiState {
    data object Empty : UiState
    data class Loading(val what: String) : UiState
    data class Ready(val before: Bitmap) : UiState
    data class Running(val before: Bitmap, val done: Int, val total: Int) : UiState
    data class Done(
        val before: Bitmap,
        val after: Bitmap,
        val millis: Long,
        val engineMillis: Long,
        val tiles: Int,
        val variant: String,
        val accelerator: Accelerator,
        val fallbackReason: String?,
        /** Mean rain density over tiles for density-aware models, else null. */
        val density: Float?,
    ) : UiState
    data class Failed(val message: String, val before: Bitmap?) : UiState
}

/**
 * Loads photos and derains them off the main thread. Inference runs on one dedicated thread
 * (the GPU delegate must stay on the thread that created it); decoding and saving on the IO
 * dispatcher. Starting a new run cancels the previous one between tiles.
 */
class DerainViewModel(app: Application) : AndroidViewModel(app) {
    private val _state = MutableStateFlow<UiState>(UiState.Empty)
    val state: StateFlow<UiState> = _state.asStateFlow()

    private val inference: ExecutorCoroutineDispatcher =
        Executors.newSingleThreadExecutor { r -> Thread(r, "derain") }.asCoroutineDispatcher()
    private val models = HashMap<String, ModelAssets.Loaded>() // touched on `inference` only
    private var job: Job? = null
    private var before: Bitmap? = null

    fun open(uri: Uri) {
        job?.cancel()
        job = viewModelScope.launch {
            _state.value = UiState.Loading("Opening photo…")
            try {
                val bitmap = withContext(Dispatchers.IO) { ImageIo.decode(getApplication(), uri) }
                before = bitmap
                _state.value = UiState.Ready(bitmap)
            } catch (e: Exception) {
                _state.value = UiState.Failed("Cannot open the photo: ${e.message}", before)
            }
        }
    }

    fun derain(variant: String, accelerator: Accelerator) {
        val photo = before ?: return
        job?.cancel()
        job = viewModelScope.launch {
            _state.value = UiState.Running(photo, 0, 0)
            try {
                _state.value = withContext(inference) { run(photo, variant, accelerator) }
            } catch (e: kotlinx.coroutines.CancellationException) {
                throw e // cancelled between tiles by a newer request, which updates the state
            } catch (e: OutOfMemoryError) {
                _state.value = UiState.Failed("Not enough memory for this photo", photo)
            } catch (e: Exception) {
                _state.value = UiState.Failed("Deraining failed: ${e.message}", photo)
            }
        }
    }

    private suspend fun run(photo: Bitmap, variant: String, requested: Accelerator): UiState {
        val context = coroutineContext
        val model = models.getOrPut(variant) { ModelAssets.load(getApplication(), variant) }
        val start = SystemClock.elapsedRealtime()
        val image = ImageIo.toRgbImage(photo)
        LiteRtEngine(model.model, requested).use { engine ->
            val result = TiledDerainer(model.spec, engine).run(image) { done, total ->
                context.ensureActive()
                _state.value = UiState.Running(photo, done, total)
                true
            }
            val after = ImageIo.toBitmap(result.image)
            return UiState.Done(
                before = photo,
                after = after,
                millis = SystemClock.elapsedRealtime() - start,
                engineMillis = result.engineNanos / 1_000_000,
                tiles = result.tiles,
                variant = variant,
                accelerator = engine.accelerator,
                fallbackReason = engine.fallbackReason,
                density = result.density?.average()?.toFloat(),
            )
        }
    }

    /** Saves the derained photo; [onSaved] gets a message for the user. */
    fun save(onSaved: (String) -> Unit) {
        val done = _state.value as? UiState.Done ?: return
        viewModelScope.launch {
            val message = try {
                val name = "derained_" +
                    SimpleDateFormat("yyyyMMdd_HHmmss", Locale.US).format(Date()) + ".jpg"
                withContext(Dispatchers.IO) { ImageIo.saveToGallery(getApplication(), done.after, name) }
                "Saved to Pictures/tfderain/$name"
            } catch (e: Exception) {
                "Saving failed: ${e.message}"
            }
            onSaved(message)
        }
    }

    override fun onCleared() {
        job?.cancel()
        inference.close()
    }
}
