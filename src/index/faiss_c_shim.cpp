/* faiss_c_shim.cpp — the few FAISS C API functions medvlp calls, for systems whose FAISS package
 * ships the C API headers but no compiled libfaiss_c (Debian's libfaiss-dev).
 *
 * OWNS: the C++ → C boundary. Each function implements the contract of its declaration in
 * the headers under faiss/c_api/ (included below, so the compiler checks every signature) and turns any C++
 * exception into the documented negative error code, keeping the message in a thread-local string
 * that faiss_get_last_error() returns. Only built when meson finds no system faiss_c library; the C
 * code of medvlp includes nothing but the C API headers either way. */
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>
#include <faiss/c_api/MetaIndexes_c.h>

#include <faiss/AutoTune.h>
#include <faiss/IndexIDMap.h>
#include <faiss/Index.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <exception>
#include <new>
#include <string>

namespace {

thread_local std::string last_error;

/* Runs body, mapping exceptions to the FaissErrorCode values of error_c.h. */
template <typename Body>
int guarded(Body body)
{
    try {
        body();
        return OK;
    } catch (const faiss::FaissException &e) {
        last_error = e.what();
        return FAISS_EXCEPT;
    } catch (const std::exception &e) {
        last_error = e.what();
        return STD_EXCEPT;
    } catch (...) {
        last_error = "unknown C++ exception";
        return UNKNOWN_EXCEPT;
    }
}

faiss::Index *cxx(FaissIndex *index) { return reinterpret_cast<faiss::Index *>(index); }
const faiss::Index *cxx(const FaissIndex *index) { return reinterpret_cast<const faiss::Index *>(index); }

} // namespace

extern "C" {

const char *faiss_get_last_error() { return last_error.c_str(); }

int faiss_index_factory(FaissIndex **p_index, int d, const char *description, FaissMetricType metric)
{
    return guarded([&] {
        *p_index = reinterpret_cast<FaissIndex *>(
                faiss::index_factory(d, description, static_cast<faiss::MetricType>(metric)));
    });
}

int faiss_IndexIDMap2_new(FaissIndexIDMap2 **p_index, FaissIndex *index)
{
    return guarded([&] {
        *p_index = reinterpret_cast<FaissIndexIDMap2 *>(new faiss::IndexIDMap2(cxx(index)));
    });
}

void faiss_IndexIDMap2_set_own_fields(FaissIndexIDMap2 *index, int own_fields)
{
    reinterpret_cast<faiss::IndexIDMap2 *>(index)->own_fields = own_fields != 0;
}

void faiss_Index_free(FaissIndex *index) { delete cxx(index); }
int faiss_Index_d(const FaissIndex *index) { return cxx(index)->d; }
int faiss_Index_is_trained(const FaissIndex *index) { return cxx(index)->is_trained ? 1 : 0; }
idx_t faiss_Index_ntotal(const FaissIndex *index) { return cxx(index)->ntotal; }

int faiss_Index_train(FaissIndex *index, idx_t n, const float *x)
{
    return guarded([&] { cxx(index)->train(n, x); });
}

int faiss_Index_add_with_ids(FaissIndex *index, idx_t n, const float *x, const idx_t *xids)
{
    return guarded([&] { cxx(index)->add_with_ids(n, x, xids); });
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x, idx_t k, float *distances,
        idx_t *labels)
{
    return guarded([&] { cxx(index)->search(n, x, k, distances, labels); });
}

int faiss_Index_reconstruct(const FaissIndex *index, idx_t key, float *recons)
{
    return guarded([&] { cxx(index)->reconstruct(key, recons); });
}

int faiss_Index_remove_ids(FaissIndex *index, const FaissIDSelector *sel, size_t *n_removed)
{
    return guarded([&] {
        *n_removed = cxx(index)->remove_ids(*reinterpret_cast<const faiss::IDSelector *>(sel));
    });
}

int faiss_IDSelectorBatch_new(FaissIDSelectorBatch **p_sel, size_t n, const idx_t *indices)
{
    return guarded([&] {
        *p_sel = reinterpret_cast<FaissIDSelectorBatch *>(new faiss::IDSelectorBatch(n, indices));
    });
}

void faiss_IDSelector_free(FaissIDSelector *sel) { delete reinterpret_cast<faiss::IDSelector *>(sel); }

int faiss_write_index_fname(const FaissIndex *index, const char *fname)
{
    return guarded([&] { faiss::write_index(cxx(index), fname); });
}

int faiss_read_index_fname(const char *fname, int io_flags, FaissIndex **p_out)
{
    return guarded([&] { *p_out = reinterpret_cast<FaissIndex *>(faiss::read_index(fname, io_flags)); });
}

int faiss_ParameterSpace_new(FaissParameterSpace **space)
{
    return guarded([&] { *space = reinterpret_cast<FaissParameterSpace *>(new faiss::ParameterSpace()); });
}

void faiss_ParameterSpace_free(FaissParameterSpace *space)
{
    delete reinterpret_cast<faiss::ParameterSpace *>(space);
}

int faiss_ParameterSpace_set_index_parameter(const FaissParameterSpace *space, FaissIndex *index,
        const char *name, double value)
{
    return guarded([&] {
        reinterpret_cast<const faiss::ParameterSpace *>(space)->set_index_parameter(cxx(index), name, value);
    });
}

} // extern "C"
